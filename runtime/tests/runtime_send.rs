//! Every future the runtime returns is `Send`, so it can be spawned on a
//! multi-threaded tokio runtime; checked at compile time.

mod common;

use common::{Order, Receipt, place_order};
use sagaflow::{Handle, MemoryStore, Runtime};

fn assert_send<T: Send>(_: &T) {}

fn assert_shareable<T: Clone + Send + Sync + 'static>() {}

#[test]
fn runtime_and_handles_are_clone_send_sync() {
    assert_shareable::<Runtime>();
    assert_shareable::<Handle<Receipt>>();
    // Even for an output type that is itself neither `Send` nor `Sync`.
    assert_shareable::<Handle<std::rc::Rc<String>>>();
}

#[tokio::test]
async fn every_runtime_future_is_send() {
    let build = Runtime::builder()
        .store(MemoryStore::new())
        .register(place_order)
        .build();
    assert_send(&build);
    let rt = build.await.expect("builds");
    let handle = rt.handle(place_order, "id");
    // The futures are created, checked and dropped, never run.
    assert_send(&rt.start(place_order, "id", Order::new("send")));
    assert_send(&rt.start(place_order, String::from("id"), Order::new("send")));
    assert_send(&rt.status("id"));
    assert_send(&rt.list(None, 10));
    assert_send(&rt.cancel("id"));
    assert_send(&rt.shutdown());
    assert_send(&handle.outcome());
    assert_send(&handle.status());
}
