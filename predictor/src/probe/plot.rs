//! The timeline of a probe (feature `plot`, plotters): each answer's latency over time, one colour per
//! release, failures in red at the top, and optionally the stages of a delivery as labelled vertical lines
//! ([`StageMarker`]).

use super::{ProbeReport, Sample};
use crate::error::{Error, Result};
use std::path::Path;

/// Fails unless this build can draw timelines: the `plot` cargo feature (on by default, off in the serving
/// image). Checked before probing, so a missing feature costs no rollout.
pub fn check_can_plot() -> Result<()> {
    if cfg!(feature = "plot") {
        Ok(())
    } else {
        Err(Error::Settings(
            "--plot needs the `plot` cargo feature, which this build of predictor leaves out \
             (built with --no-default-features); rebuild with `--features plot`"
                .into(),
        ))
    }
}

/// A moment to mark on the timeline: a vertical line at `at_s`, labelled.
#[derive(Clone, Debug, PartialEq)]
pub struct StageMarker {
    /// What happened then, e.g. `Synced`.
    pub label: String,
    /// When, in seconds since the probe started (the timeline's x axis).
    pub at_s: f64,
}

impl StageMarker {
    pub fn new(label: impl Into<String>, at_s: f64) -> Self {
        Self {
            label: label.into(),
            at_s,
        }
    }
}

/// Draws the timeline without stage markers: see [`plot_with_stages`].
pub fn plot(samples: &[Sample], report: &ProbeReport, path: &Path) -> Result<()> {
    plot_with_stages(samples, report, &[], path)
}

/// Without the `plot` feature: the error of [`check_can_plot`].
#[cfg(not(feature = "plot"))]
pub fn plot_with_stages(
    _samples: &[Sample],
    _report: &ProbeReport,
    _stages: &[StageMarker],
    _path: &Path,
) -> Result<()> {
    check_can_plot()
}

/// Where the plot's font comes from: the system's DejaVu Sans (Debian `fonts-dejavu-core`).
#[cfg(feature = "plot")]
const FONT_PATHS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Draws the timeline (latency of each answer over time, one colour per version, failures in red at the
/// top, a labelled vertical line per stage within the probe's time) to `path`: SVG if it ends in `.svg`,
/// else PNG.
#[cfg(feature = "plot")]
pub fn plot_with_stages(
    samples: &[Sample],
    report: &ProbeReport,
    stages: &[StageMarker],
    path: &Path,
) -> Result<()> {
    use plotters::prelude::*;
    let font = FONT_PATHS
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .ok_or_else(|| {
            Error::Settings(format!(
                "plotting needs a font: install fonts-dejavu-core ({})",
                FONT_PATHS[0]
            ))
        })?;
    let font: &'static [u8] = Box::leak(font.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| Error::Settings("the DejaVu font could not be loaded".into()))?;
    if path.extension().is_some_and(|e| e == "svg") {
        draw_timeline(
            SVGBackend::new(path, (1000, 500)).into_drawing_area(),
            samples,
            report,
            stages,
            path,
        )
    } else {
        draw_timeline(
            BitMapBackend::new(path, (1000, 500)).into_drawing_area(),
            samples,
            report,
            stages,
            path,
        )
    }
}

#[cfg(feature = "plot")]
fn draw_timeline<DB: plotters::prelude::DrawingBackend>(
    root: plotters::prelude::DrawingArea<DB, plotters::coord::Shift>,
    samples: &[Sample],
    report: &ProbeReport,
    stages: &[StageMarker],
    path: &Path,
) -> Result<()> {
    use plotters::prelude::*;
    let fail = |e: &dyn std::fmt::Display| {
        Error::io(
            path.display().to_string(),
            std::io::Error::other(e.to_string()),
        )
    };
    let x_max = (report.duration_ms / 1e3).max(0.001);
    let y_max = samples.iter().map(|s| s.latency_ms).fold(1.0, f64::max) * 1.15;
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Requests during the rollout: latency by version",
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("latency ms")
        .draw()
        .map_err(|e| fail(&e))?;
    let palette = [BLUE, GREEN, MAGENTA, CYAN, BLACK];
    for (i, span) in report.versions.iter().enumerate() {
        let color = palette[i % palette.len()];
        let points = samples
            .iter()
            .filter(|s| s.release().as_deref() == Some(span.version.as_str()));
        chart
            .draw_series(
                points.map(|s| Circle::new((s.sent_ms / 1e3, s.latency_ms), 2, color.filled())),
            )
            .map_err(|e| fail(&e))?
            .label(format!("version {}", span.version))
            .legend(move |(x, y)| Circle::new((x, y), 4, color.filled()));
    }
    let failures = samples.iter().filter(|s| s.failure.is_some());
    chart
        .draw_series(
            failures.map(|s| Cross::new((s.sent_ms / 1e3, y_max * 0.97), 4, RED.stroke_width(2))),
        )
        .map_err(|e| fail(&e))?
        .label(format!("failed ({})", report.failed))
        .legend(|(x, y)| Cross::new((x, y), 4, RED.stroke_width(2)));
    let stage_colour = RGBColor(200, 110, 0);
    for (i, stage) in stages
        .iter()
        .filter(|s| (0.0..=x_max).contains(&s.at_s))
        .enumerate()
    {
        chart
            .draw_series(LineSeries::new(
                [(stage.at_s, 0.0), (stage.at_s, y_max)],
                stage_colour.stroke_width(1),
            ))
            .map_err(|e| fail(&e))?;
        // NB: stages can be milliseconds apart (the first new and the last old answer): their labels go
        // down a step each, so neighbours do not overwrite each other.
        let label_y = y_max * (0.90 - 0.07 * (i % 8) as f64);
        chart
            .draw_series([Text::new(
                format!(" {}", stage.label),
                (stage.at_s, label_y),
                ("sans-serif", 13).into_font().color(&stage_colour),
            )])
            .map_err(|e| fail(&e))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))
}
