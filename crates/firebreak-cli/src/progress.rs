//! The live progress display of `run`: done / running / pruned / failed, best so
//! far and ETA, drawn on stderr when it is a terminal; when stderr is a file or
//! a pipe (a batch log), one status line at most every [`LOG_EVERY`] instead.
//! `--quiet` silences both.

use std::io::IsTerminal;

use firebreak_core::{Direction, TrialState};
use firebreak_runner::RunEvent;
use firebreak_store::Counts;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output::number;

/// How often a batch log gets a status line, at most.
pub const LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// The progress display and the counts it shows.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    counts: Counts,
    best: Option<f64>,
    direction: Direction,
    metric: String,
    n_trials: u64,
    /// Status lines for a stderr that is not a terminal: when the last was written.
    log: Option<Option<std::time::Instant>>,
    started: std::time::Instant,
    /// The generation running (`[generations]`).
    generation: Option<u32>,
    quiet: bool,
}

impl Progress {
    /// A display for a campaign of `n_trials` trials with `counts` already.
    pub fn new(
        n_trials: u64,
        counts: Counts,
        metric: &str,
        direction: Direction,
        quiet: bool,
    ) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let target = if quiet || !terminal {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let bar = ProgressBar::with_draw_target(Some(n_trials), target);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} {msg} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_position(counts.finished());
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        let mut progress = Progress {
            bar,
            counts: Counts {
                running: 0,
                ..counts
            },
            best: None,
            direction,
            metric: metric.to_string(),
            n_trials,
            log: (!quiet && !terminal).then_some(None),
            started: std::time::Instant::now(),
            generation: None,
            quiet,
        };
        progress.redraw();
        progress
    }

    /// Takes one event into account.
    pub fn on(&mut self, event: &RunEvent) {
        match event {
            RunEvent::Started { .. } => self.counts.running += 1,
            RunEvent::Finished { state, value, .. } => {
                self.counts.running = self.counts.running.saturating_sub(1);
                match state {
                    TrialState::Complete => self.counts.complete += 1,
                    TrialState::Pruned => self.counts.pruned += 1,
                    _ => self.counts.failed += 1,
                }
                if let Some(v) = value
                    && self.best.is_none_or(|b| self.direction.better(*v, b))
                {
                    self.best = Some(*v);
                }
                self.bar.set_position(self.counts.finished());
            }
            RunEvent::Generation {
                generation,
                promoted,
            } => {
                let what = match promoted {
                    None => "started".to_string(),
                    Some(true) => "closed: champion promoted".to_string(),
                    Some(false) => "closed: champion not promoted".to_string(),
                };
                self.generation = Some(*generation);
                if !self.quiet {
                    self.bar
                        .suspend(|| eprintln!("firebreak: generation {generation} {what}"));
                }
            }
            _ => {}
        }
        self.redraw();
    }

    fn redraw(&mut self) {
        let best = self
            .best
            .map(|b| format!(" · best {} {}", self.metric, number(b)))
            .unwrap_or_default();
        let generation = self
            .generation
            .map(|g| format!("generation {g} · "))
            .unwrap_or_default();
        let message = format!(
            "{generation}done {} · running {} · pruned {} · failed {}{best}",
            self.counts.complete, self.counts.running, self.counts.pruned, self.counts.failed
        );
        if let Some(last) = &mut self.log
            && last.is_none_or(|at| at.elapsed() >= LOG_EVERY)
        {
            *last = Some(std::time::Instant::now());
            eprintln!(
                "firebreak: {:.0} s, {} of {} finished · {message}",
                self.started.elapsed().as_secs_f64(),
                self.counts.finished(),
                self.n_trials
            );
        }
        self.bar.set_message(message);
    }

    /// Removes the display.
    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}
