//! The loop every stage runs: poll its consumer, take rebalances, hand over
//! messages and partition ends, tick at least every [`TICK`], and finish
//! what is safe when the service stops.

use super::{on_consume_error, Ctx, Stage, TICK};
use crate::health::health;
use crate::kafka::context::{Context, Shared};
use crate::kafka::ServiceError;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a stage does with its consumer's events.
pub(super) trait StageLoop {
    /// Which stage: its heartbeat and readiness.
    const STAGE: Stage;
    fn consumer(&self) -> Arc<BaseConsumer<Context>>;
    fn shared(&self) -> &Shared;
    /// The service stops: finish what is safe.
    fn on_stop(&mut self) -> Result<(), ServiceError>;
    /// Nothing more to read (the splitter after a drain): the loop only
    /// beats until the service stops.
    fn done(&self) -> bool {
        false
    }
    /// Nothing is queued: the loop is about to wait for up to a tick.
    fn on_wait(&mut self) {}
    fn on_rebalance(&mut self) -> Result<(), ServiceError>;
    fn on_message(&mut self, msg: &BorrowedMessage<'_>) -> Result<(), ServiceError>;
    /// The end of a partition (the broker answered).
    fn on_eof(&mut self, partition: i32) -> Result<(), ServiceError>;
    /// Periodic work.
    fn tick(&mut self) -> Result<(), ServiceError>;
}

/// Runs `stage` until the service stops or it fails.
pub(super) fn run<S: StageLoop>(stage: &mut S, ctx: &Ctx<'_>) -> Result<(), ServiceError> {
    let consumer = stage.consumer();
    let mut last_tick = Instant::now();
    let mut polls: u32 = 0;
    loop {
        if ctx.stopping() {
            ctx.set_ready(S::STAGE, Err("shutting down".into()));
            return stage.on_stop();
        }
        if stage.done() {
            std::thread::sleep(TICK);
            health().beat_stage(S::STAGE as usize);
            continue;
        }
        let polled = match consumer.poll(Duration::ZERO) {
            Some(m) => Some(m),
            None => {
                stage.on_wait();
                consumer.poll(TICK)
            }
        };
        if stage.shared().rebalanced.swap(false, Ordering::SeqCst) {
            stage.on_rebalance()?;
        }
        let mut was_message = false;
        match polled {
            None => {}
            Some(Ok(msg)) => {
                stage.on_message(&msg)?;
                was_message = true;
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                stage.shared().broker_up();
                stage.on_eof(p)?;
            }
            Some(Err(e)) => on_consume_error(stage.shared(), e),
        }
        // While messages stream, the clock is read every 64 polls only.
        polls = polls.wrapping_add(1);
        if (!was_message || polls % 64 == 0) && last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            stage.tick()?;
        }
    }
}
