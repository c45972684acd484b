//! The weather feed of `heatnet up`: a stand-in for a weather service.
//!
//! Every hour of network time (polling the simulator's clock) it fetches the
//! simulator's forecast product (`SimulatorService.GetForecast`: the simulated
//! weather plus an error that grows with lead time) and loads it into the
//! optimizer through `ControlRoomService.LoadForecast`, like any other source.
//! The optimizer never talks to the simulator about the weather: in a real
//! utility this task is a weather service's client, or `heatnet forecast load
//! URL` on a timer.
//!
//! On the lockstep clock the feed is one of the parties each step waits for
//! (as `weather-feed`, beside the gateways): the forecast of a new hour is
//! loaded before the optimizer plans on that hour's first step, so a run is
//! replayed from its seed.

use std::time::Duration;

use proto::v1;
use proto::v1::simulator_service_client::SimulatorServiceClient;
use tokio::sync::watch;

/// How often the simulator's clock is polled, real time.
pub const POLL: Duration = Duration::from_secs(1);
/// Hours of forecast fetched each time.
pub const HORIZON_H: u32 = 72;
/// The author the optimizer's audit log shows for the feed.
pub const AUTHOR: &str = "weather-feed";
const HOUR_MS: i64 = 3_600_000;
/// After a failed load the next try waits this long, doubled with each
/// further failure up to [`RETRY_MAX`], real time: an optimizer that refuses
/// the forecast (its disk nearly full) is asked once a minute, not every
/// second (found on a full disk: two errors a second in its log).
pub const RETRY_FIRST: Duration = Duration::from_secs(1);
pub const RETRY_MAX: Duration = Duration::from_secs(60);

/// How long to wait before the next try after `failures` failed loads in a row.
pub fn retry_delay(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    RETRY_FIRST
        .saturating_mul(1 << (failures - 1).min(16))
        .min(RETRY_MAX)
}

/// The network hour a forecast is due for, if one is due: each new hour of
/// network time once.
pub fn due(last_hour: Option<i64>, now_ms: i64) -> Option<i64> {
    let hour = now_ms.div_euclid(HOUR_MS);
    (last_hour != Some(hour) && now_ms > 0).then_some(hour)
}

async fn once(sim: &str, opt: &str) -> anyhow::Result<(i64, u32)> {
    let sim_ch = observe::grpc::endpoint(sim)?
        .timeout(Duration::from_secs(5))
        .connect()
        .await?;
    let f = SimulatorServiceClient::new(sim_ch)
        .get_forecast(v1::SimForecastRequest {
            horizon_h: HORIZON_H,
        })
        .await?
        .into_inner();
    let opt_ch = observe::grpc::endpoint(opt)?
        .timeout(Duration::from_secs(5))
        .connect()
        .await?;
    let r = proto::control_room_client(opt_ch)
        .load_forecast(v1::LoadForecastRequest {
            source: f.source,
            issued_at_ms: f.issued_at_ms,
            points: f.points,
            author: AUTHOR.into(),
        })
        .await?
        .into_inner();
    Ok((f.issued_at_ms, r.points))
}

async fn clock_ms(sim: &str) -> anyhow::Result<i64> {
    let ch = observe::grpc::endpoint(sim)?
        .timeout(Duration::from_secs(5))
        .connect()
        .await?;
    Ok(SimulatorServiceClient::new(ch)
        .get_clock(v1::GetClockRequest {})
        .await?
        .into_inner()
        .time_ms)
}

/// The feed's party name on the lockstep clock.
pub const LOCKSTEP_ID: &str = "weather-feed";

/// Runs the feed until `stop` turns true: on the simulator's lockstep clock
/// (`lockstep`), else polling the clock every [`POLL`].
pub async fn run(sim: String, opt: String, lockstep: bool, stop: watch::Receiver<bool>) {
    if lockstep {
        run_lockstep(sim, opt, stop).await
    } else {
        run_polling(sim, opt, stop).await
    }
}

/// Reports `done` to the lockstep clock and returns the next step and its
/// network time (the same step again when the clock held the call).
async fn await_step(
    client: &mut SimulatorServiceClient<tonic::transport::Channel>,
    done: u64,
) -> anyhow::Result<(u64, i64)> {
    let c = client
        .await_step(v1::AwaitStepRequest {
            gateway_id: LOCKSTEP_ID.into(),
            done_step: done,
            planner: false,
        })
        .await?
        .into_inner();
    Ok((c.steps, c.time_ms))
}

async fn run_lockstep(sim: String, opt: String, mut stop: watch::Receiver<bool>) {
    let mut client = match observe::grpc::endpoint(&sim) {
        // The simulator holds an AwaitStep call up to 5 s.
        Ok(e) => SimulatorServiceClient::new(e.timeout(Duration::from_secs(15)).connect_lazy()),
        Err(e) => {
            tracing::error!(error = %e, "weather feed: simulator address unusable");
            return;
        }
    };
    let mut done = 0u64;
    let mut feed = Feed::default();
    loop {
        let step = tokio::select! {
            r = await_step(&mut client, done) => r,
            _ = stop.changed() => return,
        };
        let (step, now) = match step {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %format!("{e:#}"), "weather feed: lockstep clock not available");
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        if step == done {
            continue;
        }
        feed.load_if_due(&sim, &opt, now).await;
        done = step;
    }
}

async fn run_polling(sim: String, opt: String, mut stop: watch::Receiver<bool>) {
    let mut feed = Feed::default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
        let now = match clock_ms(&sim).await {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!(error = %format!("{e:#}"), "weather feed: simulator clock not available");
                continue;
            }
        };
        feed.load_if_due(&sim, &opt, now).await;
    }
}

/// The feed's own state: the network hour last loaded, and the failed
/// loads in a row (the first is logged, the next tries back off:
/// [`retry_delay`]).
#[derive(Default)]
struct Feed {
    last_hour: Option<i64>,
    failures: u32,
    retry_at: Option<tokio::time::Instant>,
}

impl Feed {
    /// Loads the forecast when network time `now_ms` has entered a new hour
    /// (tried again at a later call, [`retry_delay`] after it fails).
    async fn load_if_due(&mut self, sim: &str, opt: &str, now_ms: i64) {
        let Some(hour) = due(self.last_hour, now_ms) else {
            return;
        };
        if self
            .retry_at
            .is_some_and(|at| tokio::time::Instant::now() < at)
        {
            return;
        }
        match once(sim, opt).await {
            Ok((issued_at_ms, points)) => {
                self.last_hour = Some(hour);
                if self.failures > 0 {
                    tracing::info!(
                        failures = self.failures,
                        "weather feed: forecasts load again"
                    );
                }
                self.failures = 0;
                self.retry_at = None;
                tracing::info!(issued_at_ms, points, "weather feed: forecast loaded");
            }
            Err(e) => {
                if self.failures == 0 {
                    tracing::warn!(error = %format!("{e:#}"), "weather feed: forecast not loaded; retrying");
                }
                self.failures = self.failures.saturating_add(1);
                self.retry_at = Some(tokio::time::Instant::now() + retry_delay(self.failures));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_forecast_per_network_hour() {
        let t0 = 1_796_054_400_000; // on the hour
        assert_eq!(due(None, t0), Some(t0 / HOUR_MS));
        assert_eq!(due(Some(t0 / HOUR_MS), t0 + HOUR_MS - 1), None);
        assert_eq!(
            due(Some(t0 / HOUR_MS), t0 + HOUR_MS),
            Some(t0 / HOUR_MS + 1)
        );
        assert_eq!(due(None, 0), None);
    }

    #[test]
    fn failed_loads_are_tried_again_later_and_later_up_to_a_minute() {
        let secs = |n: u32| retry_delay(n).as_secs_f64();
        assert_eq!(secs(0), 0.0);
        assert_eq!(
            (1..=8).map(secs).collect::<Vec<_>>(),
            vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
        );
        assert_eq!(retry_delay(u32::MAX), RETRY_MAX);
    }
}
