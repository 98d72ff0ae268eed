//! A saga written by hand exactly as `#[step]`, `#[compensate]` and
//! `#[workflow]` would generate it, so the runtime is tested without the
//! macros:
//!
//! ```text
//! #[step] async fn reserve_inventory(order: &Order) -> Result<Reservation, StepError>
//! #[compensate(reserve_inventory)] async fn release_inventory(order: &Order, r: Reservation)
//! #[step(retry(max_attempts = 4, initial = "1s", backoff = 2.0))] async fn charge_payment(order: &Order) -> Result<Payment, StepError>
//! #[compensate(charge_payment)] async fn refund_payment(order: &Order, p: Payment)
//! #[step(pivot)] async fn create_shipment(order: &Order, r: &Reservation) -> Result<Shipment, StepError>
//! #[step(retriable)] async fn send_confirmation(order: &Order, s: &Shipment) -> Result<(), StepError>
//!
//! #[workflow]
//! async fn place_order(order: Order) -> Result<Receipt, WorkflowError> {
//!     let reservation = reserve_inventory(&order).await?;
//!     let payment = charge_payment(&order).await?;
//!     let shipment = create_shipment(&order, &reservation).await?;
//!     send_confirmation(&order, &shipment).await?;
//!     Ok(Receipt { order: order.key, payment, shipment })
//! }
//! ```
//!
//! Each step and compensation appends `name#attempt` to the log of its
//! order's `key`, and fails as the order's `failures` say.

#![allow(non_camel_case_types, dead_code, clippy::manual_async_fn)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use sagaflow::__private::{
    Attempt, Compensate, CompensationFuture, Driver, Edge, EdgeLabel, RawJson, StateInfo,
    StateMachine, Step, StepInfo, StepKind, StepOptions, Target, Traced, Transition, Upgrade,
    Variable, Workflow, decode, shape_of,
};
use sagaflow::{StepError, WorkflowError};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------- the log

static LOGS: Mutex<Option<HashMap<String, Vec<String>>>> = Mutex::new(None);

fn logs() -> MutexGuard<'static, Option<HashMap<String, Vec<String>>>> {
    LOGS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Appends `entry` to the log of `key`.
pub fn log(key: &str, entry: String) {
    logs()
        .get_or_insert_with(HashMap::new)
        .entry(key.to_owned())
        .or_default()
        .push(entry);
}

/// The log of a `place_order` whose four steps each ran once, in order.
pub const EACH_STEP_ONCE: [&str; 4] = [
    "reserve_inventory#1",
    "charge_payment#1",
    "create_shipment#1",
    "send_confirmation#1",
];

/// The log of `key` so far.
pub fn log_of(key: &str) -> Vec<String> {
    logs()
        .as_ref()
        .and_then(|logs| logs.get(key).cloned())
        .unwrap_or_default()
}

// ---------------------------------------------------------------- the data

/// The workflow input; `key` names the log, `failures` scripts failures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub key: String,
    pub amount: u64,
    /// Step or compensation name → how many attempts fail (`u32::MAX`: all).
    pub failures: BTreeMap<String, u32>,
    /// Names whose failures are permanent rather than retryable.
    pub permanent: Vec<String>,
    /// Names that wait for [`release`] before returning, to hold an
    /// instance in a step.
    pub gated: Vec<String>,
    /// Names that panic instead of returning.
    pub panicking: Vec<String>,
    /// Names whose first run (by any runtime) waits for [`release`]; later
    /// runs, by a worker that took the instance over, do not.
    #[serde(default)]
    pub held_once: Vec<String>,
    /// Names that log the heartbeat details an earlier attempt left
    /// (`{name} saw {details:?}`), then heartbeat `{name} progress at attempt {n}`.
    #[serde(default)]
    pub heartbeating: Vec<String>,
}

impl Order {
    pub fn new(key: &str) -> Order {
        Order {
            key: key.to_owned(),
            amount: 42,
            ..Order::default()
        }
    }

    /// `name` fails its first `times` attempts with a retryable error.
    pub fn failing(mut self, name: &str, times: u32) -> Order {
        self.failures.insert(name.to_owned(), times);
        self
    }

    /// `name` fails every attempt with a permanent error.
    pub fn failing_permanently(mut self, name: &str) -> Order {
        self.failures.insert(name.to_owned(), u32::MAX);
        self.permanent.push(name.to_owned());
        self
    }

    /// `name` panics on every attempt.
    pub fn panicking(mut self, name: &str) -> Order {
        self.panicking.push(name.to_owned());
        self
    }

    /// The first run of `name` waits for `release(key, name)`; later runs
    /// (after a takeover) do not.
    pub fn held_once(mut self, name: &str) -> Order {
        self.held_once.push(name.to_owned());
        self
    }

    /// `name` reads and reports heartbeat details (see [`Order::heartbeating`]).
    pub fn heartbeating(mut self, name: &str) -> Order {
        self.heartbeating.push(name.to_owned());
        self
    }

    /// `name` waits for `release(key, name)` before it runs.
    pub fn gated(mut self, name: &str) -> Order {
        self.gated.push(name.to_owned());
        self
    }
}

static GATES: Mutex<Option<HashMap<String, std::sync::Arc<tokio::sync::Semaphore>>>> =
    Mutex::new(None);

fn gate(key: &str, name: &str) -> std::sync::Arc<tokio::sync::Semaphore> {
    let mut gates = GATES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    gates
        .get_or_insert_with(HashMap::new)
        .entry(format!("{key}/{name}"))
        .or_insert_with(|| std::sync::Arc::new(tokio::sync::Semaphore::new(0)))
        .clone()
}

/// Lets one gated run of `name` in order `key` proceed.
pub fn release(key: &str, name: &str) {
    gate(key, name).add_permits(1);
}

/// What every step and compensation does first: log, maybe wait, maybe fail.
async fn behave(order: &Order, name: &str) -> Result<(), StepError> {
    let attempt = sagaflow::context().map_or(0, |context| context.attempt);
    log(&order.key, format!("{name}#{attempt}"));
    if order.heartbeating.iter().any(|beating| beating == name) {
        let seen: Option<String> = sagaflow::context().and_then(|ctx| ctx.heartbeat_details());
        log(&order.key, format!("{name} saw {seen:?}"));
        sagaflow::heartbeat(format!("{name} progress at attempt {attempt}"))
            .await
            .map_err(|error| StepError::permanent(error.to_string()))?;
    }
    let first_run = log_of(&order.key)
        .iter()
        .filter(|entry| entry.starts_with(&format!("{name}#")))
        .count()
        == 1;
    let held = order.held_once.iter().any(|held| held == name) && first_run;
    if held || order.gated.iter().any(|gated| gated == name) {
        let gate = gate(&order.key, name);
        let permit = gate
            .acquire()
            .await
            .map_err(|error| StepError::permanent(error.to_string()))?;
        permit.forget();
    }
    if order.panicking.iter().any(|panicking| panicking == name) {
        panic!("{name} panicked");
    }
    let failing = order.failures.get(name).copied().unwrap_or(0);
    if attempt <= failing {
        let message = format!("{name} failed (attempt {attempt})");
        return Err(
            if order.permanent.iter().any(|permanent| permanent == name) {
                StepError::permanent(message)
            } else {
                StepError::retryable(message)
            },
        );
    }
    Ok(())
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    pub id: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    pub amount: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shipment {
    pub tracking: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    pub order: String,
    pub payment: Payment,
    pub shipment: Shipment,
}

// ---------------------------------------------------------------- steps

pub async fn reserve_inventory(order: &Order) -> Result<Reservation, StepError> {
    behave(order, "reserve_inventory").await?;
    Ok(Reservation {
        id: format!("R-{}", order.key),
    })
}

pub async fn release_inventory(order: &Order, reservation: Reservation) -> Result<(), StepError> {
    behave(order, &format!("release_inventory({})", reservation.id)).await
}

pub async fn charge_payment(order: &Order) -> Result<Payment, StepError> {
    behave(order, "charge_payment").await?;
    Ok(Payment {
        amount: order.amount,
    })
}

pub async fn refund_payment(order: &Order, payment: Payment) -> Result<(), StepError> {
    behave(order, &format!("refund_payment({})", payment.amount)).await
}

pub async fn create_shipment(
    order: &Order,
    reservation: &Reservation,
) -> Result<Shipment, StepError> {
    behave(order, "create_shipment").await?;
    Ok(Shipment {
        tracking: format!("T-{}", reservation.id),
    })
}

pub async fn send_confirmation(order: &Order, _shipment: &Shipment) -> Result<(), StepError> {
    behave(order, "send_confirmation").await
}

pub struct reserve_inventory {}
impl Step for reserve_inventory {
    const NAME: &'static str = "reserve_inventory";
    const KIND: StepKind = StepKind::Compensable;
    const OPTIONS: StepOptions = StepOptions::NONE;
    const FINGERPRINT: u64 = 0x1111;
    type Args = (Order,);
    type Output = Reservation;
}
impl Compensate for reserve_inventory {
    const COMPENSATION: Option<&'static str> = Some("release_inventory");
    fn compensate(args: RawJson, output: RawJson) -> CompensationFuture {
        Box::pin(async move {
            let (order,): (Order,) = decode("arguments of step `reserve_inventory`", &args)?;
            let output: Reservation = decode("output of step `reserve_inventory`", &output)?;
            release_inventory(&order, output).await
        })
    }
}

pub struct charge_payment {}
impl Step for charge_payment {
    const NAME: &'static str = "charge_payment";
    const KIND: StepKind = StepKind::Compensable;
    const OPTIONS: StepOptions = StepOptions {
        max_attempts: Some(4),
        initial_interval: Some(Duration::from_secs(1)),
        backoff: Some(2.0),
        ..StepOptions::NONE
    };
    const FINGERPRINT: u64 = 0x2222;
    type Args = (Order,);
    type Output = Payment;
}
impl Compensate for charge_payment {
    const COMPENSATION: Option<&'static str> = Some("refund_payment");
    fn compensate(args: RawJson, output: RawJson) -> CompensationFuture {
        Box::pin(async move {
            let (order,): (Order,) = decode("arguments of step `charge_payment`", &args)?;
            let output: Payment = decode("output of step `charge_payment`", &output)?;
            refund_payment(&order, output).await
        })
    }
}

pub struct create_shipment {}
impl Step for create_shipment {
    const NAME: &'static str = "create_shipment";
    const KIND: StepKind = StepKind::Pivot;
    const OPTIONS: StepOptions = StepOptions::NONE;
    const FINGERPRINT: u64 = 0x3333;
    type Args = (Order, Reservation);
    type Output = Shipment;
}

pub struct send_confirmation {}
impl Step for send_confirmation {
    const NAME: &'static str = "send_confirmation";
    const KIND: StepKind = StepKind::Retriable;
    const OPTIONS: StepOptions = StepOptions::NONE;
    const FINGERPRINT: u64 = 0x4444;
    type Args = (Order, Shipment);
    type Output = ();
}

// ---------------------------------------------------------------- workflow

/// The workflow: a unit struct, so `place_order` is a type and a value.
#[derive(Clone, Copy, Debug)]
pub struct place_order;

#[derive(Serialize, Deserialize)]
pub enum PlaceOrderState {
    Start {
        order: Order,
    },
    ReserveInventory0 {
        order: Order,
    },
    ChargePayment1 {
        order: Order,
        reservation: Reservation,
    },
    CreateShipment2 {
        order: Order,
        reservation: Reservation,
        payment: Payment,
    },
    SendConfirmation3 {
        order: Order,
        payment: Payment,
        shipment: Shipment,
    },
}

const ORDER: &[Variable] = &[Variable {
    name: "order",
    ty: "Order",
    shape: shape_of::<Order>(),
}];

pub static PLACE_ORDER_MACHINE: StateMachine = StateMachine {
    workflow: "place_order",
    states: &[
        StateInfo {
            name: "Start",
            step: None,
            wait: None,
            commit_on_entry: false,
            variables: ORDER,
            branches: &[],
        },
        StateInfo {
            name: "ReserveInventory0",
            step: Some(StepInfo {
                name: "reserve_inventory",
                kind: StepKind::Compensable,
                compensation: Some("release_inventory"),
                args: shape_of::<()>(),
                output: shape_of::<()>(),
            }),
            wait: None,
            commit_on_entry: false,
            variables: ORDER,
            branches: &[],
        },
        StateInfo {
            name: "ChargePayment1",
            step: Some(StepInfo {
                name: "charge_payment",
                kind: StepKind::Compensable,
                compensation: Some("refund_payment"),
                args: shape_of::<()>(),
                output: shape_of::<()>(),
            }),
            wait: None,
            commit_on_entry: false,
            variables: &[
                Variable {
                    name: "order",
                    ty: "Order",
                    shape: shape_of::<Order>(),
                },
                Variable {
                    name: "reservation",
                    ty: "Reservation",
                    shape: shape_of::<Reservation>(),
                },
            ],
            branches: &[],
        },
        StateInfo {
            name: "CreateShipment2",
            step: Some(StepInfo {
                name: "create_shipment",
                kind: StepKind::Pivot,
                compensation: None,
                args: shape_of::<()>(),
                output: shape_of::<()>(),
            }),
            wait: None,
            commit_on_entry: false,
            variables: &[
                Variable {
                    name: "order",
                    ty: "Order",
                    shape: shape_of::<Order>(),
                },
                Variable {
                    name: "reservation",
                    ty: "Reservation",
                    shape: shape_of::<Reservation>(),
                },
                Variable {
                    name: "payment",
                    ty: "Payment",
                    shape: shape_of::<Payment>(),
                },
            ],
            branches: &[],
        },
        StateInfo {
            name: "SendConfirmation3",
            step: Some(StepInfo {
                name: "send_confirmation",
                kind: StepKind::Retriable,
                compensation: None,
                args: shape_of::<()>(),
                output: shape_of::<()>(),
            }),
            wait: None,
            commit_on_entry: false,
            variables: &[
                Variable {
                    name: "order",
                    ty: "Order",
                    shape: shape_of::<Order>(),
                },
                Variable {
                    name: "payment",
                    ty: "Payment",
                    shape: shape_of::<Payment>(),
                },
                Variable {
                    name: "shipment",
                    ty: "Shipment",
                    shape: shape_of::<Shipment>(),
                },
            ],
            branches: &[],
        },
    ],
    edges: &[
        Edge {
            from: 0,
            to: Target::State(1),
            label: EdgeLabel::Ok,
        },
        Edge {
            from: 1,
            to: Target::State(2),
            label: EdgeLabel::Ok,
        },
        Edge {
            from: 1,
            to: Target::Error,
            label: EdgeLabel::Err,
        },
        Edge {
            from: 2,
            to: Target::State(3),
            label: EdgeLabel::Ok,
        },
        Edge {
            from: 2,
            to: Target::Error,
            label: EdgeLabel::Err,
        },
        Edge {
            from: 3,
            to: Target::State(4),
            label: EdgeLabel::Ok,
        },
        Edge {
            from: 3,
            to: Target::Error,
            label: EdgeLabel::Err,
        },
        Edge {
            from: 4,
            to: Target::Complete,
            label: EdgeLabel::Ok,
        },
        Edge {
            from: 4,
            to: Target::Error,
            label: EdgeLabel::Err,
        },
    ],
    structure: 0x5a5a_0000_0000_0001,
    legacy: 0x5a5a_0000_0000_0001,
    version: 1,
    upgrade: Upgrade::Pinned,
    output: shape_of::<String>(),
    traced: Traced::new(),
};

impl Workflow for place_order {
    const NAME: &'static str = "place_order";
    type Input = Order;
    type Output = Receipt;
    type State = PlaceOrderState;

    fn state_machine(&self) -> &'static StateMachine {
        &PLACE_ORDER_MACHINE
    }

    fn begin(input: Order) -> PlaceOrderState {
        PlaceOrderState::Start { order: input }
    }

    fn state_name(state: &PlaceOrderState) -> &'static str {
        match state {
            PlaceOrderState::Start { .. } => "Start",
            PlaceOrderState::ReserveInventory0 { .. } => "ReserveInventory0",
            PlaceOrderState::ChargePayment1 { .. } => "ChargePayment1",
            PlaceOrderState::CreateShipment2 { .. } => "CreateShipment2",
            PlaceOrderState::SendConfirmation3 { .. } => "SendConfirmation3",
        }
    }

    fn resume(
        state: PlaceOrderState,
        driver: &mut Driver,
    ) -> impl Future<Output = Transition<PlaceOrderState, Receipt>> + Send + '_ {
        async move {
            match state {
                PlaceOrderState::Start { order } => {
                    Transition::Next(PlaceOrderState::ReserveInventory0 { order })
                }
                PlaceOrderState::ReserveInventory0 { order } => {
                    let args = driver.args::<reserve_inventory, _>(&(&order,));
                    match driver
                        .attempt::<reserve_inventory, _>(args, reserve_inventory(&order))
                        .await
                    {
                        Attempt::Suspend => Transition::Suspend,
                        Attempt::Done(Ok(reservation)) => {
                            Transition::Next(PlaceOrderState::ChargePayment1 { order, reservation })
                        }
                        Attempt::Done(Err(error)) => Transition::Fail(error.into()),
                    }
                }
                PlaceOrderState::ChargePayment1 { order, reservation } => {
                    let args = driver.args::<charge_payment, _>(&(&order,));
                    match driver
                        .attempt::<charge_payment, _>(args, charge_payment(&order))
                        .await
                    {
                        Attempt::Suspend => Transition::Suspend,
                        Attempt::Done(Ok(payment)) => {
                            Transition::Next(PlaceOrderState::CreateShipment2 {
                                order,
                                reservation,
                                payment,
                            })
                        }
                        Attempt::Done(Err(error)) => Transition::Fail(error.into()),
                    }
                }
                PlaceOrderState::CreateShipment2 {
                    order,
                    reservation,
                    payment,
                } => {
                    let args = driver.args::<create_shipment, _>(&(&order, &reservation));
                    match driver
                        .attempt::<create_shipment, _>(args, create_shipment(&order, &reservation))
                        .await
                    {
                        Attempt::Suspend => Transition::Suspend,
                        Attempt::Done(Ok(shipment)) => {
                            Transition::Next(PlaceOrderState::SendConfirmation3 {
                                order,
                                payment,
                                shipment,
                            })
                        }
                        Attempt::Done(Err(error)) => Transition::Fail(error.into()),
                    }
                }
                PlaceOrderState::SendConfirmation3 {
                    order,
                    payment,
                    shipment,
                } => {
                    let args = driver.args::<send_confirmation, _>(&(&order, &shipment));
                    match driver
                        .attempt::<send_confirmation, _>(args, send_confirmation(&order, &shipment))
                        .await
                    {
                        Attempt::Suspend => Transition::Suspend,
                        Attempt::Done(Ok(())) => Transition::Complete(Receipt {
                            order: order.key,
                            payment,
                            shipment,
                        }),
                        Attempt::Done(Err(error)) => Transition::Fail(WorkflowError::from(error)),
                    }
                }
            }
        }
    }

    fn compensate(step: &str, args: RawJson, output: RawJson) -> Option<CompensationFuture> {
        match step {
            "reserve_inventory" => {
                Some(<reserve_inventory as Compensate>::compensate(args, output))
            }
            "charge_payment" => Some(<charge_payment as Compensate>::compensate(args, output)),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------- a second workflow

/// `#[step(readonly)] async fn echo(text: &str) -> Result<String, StepError>`
pub struct echo {}
impl Step for echo {
    const NAME: &'static str = "echo";
    const KIND: StepKind = StepKind::Readonly;
    const OPTIONS: StepOptions = StepOptions::NONE;
    const FINGERPRINT: u64 = 0x5555;
    type Args = (String,);
    type Output = String;
}

pub async fn echo(text: &str) -> Result<String, StepError> {
    Ok(text.to_owned())
}

/// `#[workflow] async fn ping(text: String) -> Result<String, WorkflowError> { Ok(echo(&text).await?) }`
#[derive(Clone, Copy, Debug)]
pub struct ping;

#[derive(Serialize, Deserialize)]
pub enum PingState {
    Start { text: String },
    Echo0 { text: String },
}

pub static PING_MACHINE: StateMachine = StateMachine {
    workflow: "ping",
    states: &[
        StateInfo {
            name: "Start",
            step: None,
            wait: None,
            commit_on_entry: false,
            variables: &[Variable {
                name: "text",
                ty: "String",
                shape: shape_of::<String>(),
            }],
            branches: &[],
        },
        StateInfo {
            name: "Echo0",
            step: Some(StepInfo {
                name: "echo",
                kind: StepKind::Readonly,
                compensation: None,
                args: shape_of::<()>(),
                output: shape_of::<()>(),
            }),
            wait: None,
            commit_on_entry: false,
            variables: &[Variable {
                name: "text",
                ty: "String",
                shape: shape_of::<String>(),
            }],
            branches: &[],
        },
    ],
    edges: &[
        Edge {
            from: 0,
            to: Target::State(1),
            label: EdgeLabel::Ok,
        },
        Edge {
            from: 1,
            to: Target::Complete,
            label: EdgeLabel::Ok,
        },
        Edge {
            from: 1,
            to: Target::Error,
            label: EdgeLabel::Err,
        },
    ],
    structure: 0x5a5a_0000_0000_0002,
    legacy: 0x5a5a_0000_0000_0002,
    version: 1,
    upgrade: Upgrade::Pinned,
    output: shape_of::<String>(),
    traced: Traced::new(),
};

impl Workflow for ping {
    const NAME: &'static str = "ping";
    type Input = String;
    type Output = String;
    type State = PingState;

    fn state_machine(&self) -> &'static StateMachine {
        &PING_MACHINE
    }

    fn begin(input: String) -> PingState {
        PingState::Start { text: input }
    }

    fn state_name(state: &PingState) -> &'static str {
        match state {
            PingState::Start { .. } => "Start",
            PingState::Echo0 { .. } => "Echo0",
        }
    }

    fn resume(
        state: PingState,
        driver: &mut Driver,
    ) -> impl Future<Output = Transition<PingState, String>> + Send + '_ {
        async move {
            match state {
                PingState::Start { text } => Transition::Next(PingState::Echo0 { text }),
                PingState::Echo0 { text } => {
                    let args = driver.args::<echo, _>(&(&text,));
                    match driver.attempt::<echo, _>(args, echo(&text)).await {
                        Attempt::Suspend => Transition::Suspend,
                        Attempt::Done(Ok(echoed)) => Transition::Complete(echoed),
                        Attempt::Done(Err(error)) => Transition::Fail(error.into()),
                    }
                }
            }
        }
    }

    fn compensate(_step: &str, _args: RawJson, _output: RawJson) -> Option<CompensationFuture> {
        None
    }
}

// ---------------------------------------------------------------- helpers

/// A runtime on `store` running both workflows.
pub async fn runtime(store: sagaflow::MemoryStore) -> sagaflow::Runtime {
    sagaflow::Runtime::builder()
        .store(store)
        .register(place_order)
        .register(ping)
        .build()
        .await
        .expect("the runtime builds")
}

// ---------------------------------------------------------------- a tapped store

/// A store in front of another that counts writes by key prefix and can be
/// cut off, as a network partition cuts a process off its store.
#[derive(Clone, Default)]
pub struct Tap {
    inner: sagaflow::MemoryStore,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    counts: std::sync::Arc<Mutex<BTreeMap<String, u64>>>,
}

impl Tap {
    /// A tap on `inner`.
    pub fn new(inner: sagaflow::MemoryStore) -> Tap {
        Tap {
            inner,
            ..Tap::default()
        }
    }

    /// Makes every operation fail with `Unavailable` (`true`) or work again.
    pub fn cut(&self, cut: bool) {
        self.cut.store(cut, std::sync::atomic::Ordering::SeqCst);
    }

    /// How many times `what` happened: `put instances/`, `put due/`,
    /// `delete due/`, `conflict instances/`, ...
    pub fn count(&self, what: &str) -> u64 {
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(what)
            .copied()
            .unwrap_or(0)
    }

    fn check(&self) -> Result<(), sagaflow::StoreError> {
        if self.cut.load(std::sync::atomic::Ordering::SeqCst) {
            Err(sagaflow::StoreError::Unavailable("partitioned".to_owned()))
        } else {
            Ok(())
        }
    }

    fn bump(&self, operation: &str, key: &str) {
        let prefix = key.split_inclusive('/').next().unwrap_or(key);
        *self
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(format!("{operation} {prefix}"))
            .or_default() += 1;
    }
}

#[async_trait::async_trait]
impl sagaflow::Store for Tap {
    async fn get(
        &self,
        key: &str,
    ) -> Result<Option<sagaflow::store::Versioned>, sagaflow::StoreError> {
        self.check()?;
        self.inner.get(key).await
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        expect: sagaflow::store::Expect,
    ) -> Result<u64, sagaflow::StoreError> {
        self.check()?;
        let written = self.inner.put(key, value, expect).await;
        match &written {
            Ok(_) => self.bump("put", key),
            Err(sagaflow::StoreError::Conflict) => self.bump("conflict", key),
            Err(_) => {}
        }
        written
    }

    async fn delete(
        &self,
        key: &str,
        expect: sagaflow::store::Expect,
    ) -> Result<(), sagaflow::StoreError> {
        self.check()?;
        let deleted = self.inner.delete(key, expect).await;
        if deleted.is_ok() {
            self.bump("delete", key);
        }
        deleted
    }

    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<sagaflow::store::ScanPage, sagaflow::StoreError> {
        self.check()?;
        self.inner.scan(prefix, after, limit).await
    }

    fn name(&self) -> &'static str {
        "tap"
    }
}

/// Waits (on paused time, so instantly) until `condition` holds.
pub async fn until(mut condition: impl AsyncFnMut() -> bool) {
    for _ in 0..100_000 {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the condition never held");
}
