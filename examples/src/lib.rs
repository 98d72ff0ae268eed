//! Domain types shared by the sagaflow examples.
