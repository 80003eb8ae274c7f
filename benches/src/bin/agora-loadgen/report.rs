//! Run output: a results directory holding `report.json` and hand-drawn SVG charts (line
//! charts of time series and of figures against cluster size, scatter plots with a fitted
//! line). No plotting crate: the SVG is a few hundred bytes of markup per series.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Where a run writes; created on construction.
pub struct ResultsDir {
    pub path: PathBuf,
}

impl ResultsDir {
    pub fn create(path: PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&path)
            .with_context(|| format!("creating results directory {}", path.display()))?;
        Ok(Self { path })
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn write_json(&self, name: &str, value: &serde_json::Value) -> anyhow::Result<PathBuf> {
        let p = self.file(name);
        let text = serde_json::to_string_pretty(value).context("serialising the report")?;
        std::fs::write(&p, text + "\n").with_context(|| format!("writing {}", p.display()))?;
        Ok(p)
    }

    pub fn write_chart(&self, name: &str, chart: &Chart) -> anyhow::Result<PathBuf> {
        let p = self.file(name);
        std::fs::write(&p, chart.to_svg()).with_context(|| format!("writing {}", p.display()))?;
        Ok(p)
    }
}

/// Default results directory: `target/loadgen/<scenario>-<unix seconds>`.
pub fn default_dir(target: &Path, scenario: &str) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    target.join("loadgen").join(format!("{scenario}-{secs}"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Points joined by lines.
    Line,
    /// Points only, plus the least-squares line through them.
    ScatterFit,
}

#[derive(Clone, Debug)]
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// One chart: a title, axis labels and any number of named series.
#[derive(Clone, Debug)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub style: Style,
    pub series: Vec<Line>,
}

const W: f64 = 860.0;
const H: f64 = 480.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 200.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;
const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// Round tick step: 1, 2 or 5 times a power of ten, about `n` ticks over `span`.
fn tick_step(span: f64, n: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / n;
    let p = 10f64.powf(raw.log10().floor());
    let m = raw / p;
    let m = if m < 1.5 {
        1.0
    } else if m < 3.5 {
        2.0
    } else if m < 7.5 {
        5.0
    } else {
        10.0
    };
    m * p
}

fn fmt_tick(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 1e4 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Chart {
    pub fn new(title: &str, x_label: &str, y_label: &str, style: Style) -> Self {
        Self {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            style,
            series: Vec::new(),
        }
    }

    pub fn with(mut self, name: &str, points: Vec<(f64, f64)>) -> Self {
        self.series.push(Line {
            name: name.into(),
            points,
        });
        self
    }

    pub fn to_svg(&self) -> String {
        let all = self
            .series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| p.0.is_finite() && p.1.is_finite());
        let (mut x0, mut x1, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY);
        for &(x, y) in all {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
        if !x0.is_finite() {
            (x0, x1, y1) = (0.0, 1.0, 1.0);
        }
        // The y axis starts at zero: these are rates, latencies and sizes.
        let x0 = x0.min(0.0);
        let y0 = 0.0;
        let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
        let y1 = if y1 > y0 { y1 * 1.05 } else { 1.0 };
        let pw = W - LEFT - RIGHT;
        let ph = H - TOP - BOTTOM;
        let sx = |x: f64| LEFT + (x - x0) / (x1 - x0) * pw;
        let sy = |y: f64| TOP + ph - (y - y0) / (y1 - y0) * ph;

        let mut o = String::new();
        let _ = writeln!(
            o,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(o, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
        let _ = writeln!(
            o,
            r#"<text x="{}" y="28" font-size="16" text-anchor="middle">{}</text>"#,
            LEFT + pw / 2.0,
            esc(&self.title)
        );
        // Grid and ticks.
        let xs = tick_step(x1 - x0, 8.0);
        let mut t = (x0 / xs).ceil() * xs;
        while t <= x1 + xs * 1e-9 {
            let x = sx(t);
            let _ = writeln!(
                o,
                r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#eee"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                TOP + ph,
                TOP + ph + 16.0,
                fmt_tick(t)
            );
            t += xs;
        }
        let ys = tick_step(y1 - y0, 6.0);
        let mut t = 0.0;
        while t <= y1 + ys * 1e-9 {
            let y = sy(t);
            let _ = writeln!(
                o,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT + pw,
                LEFT - 6.0,
                y + 4.0,
                fmt_tick(t)
            );
            t += ys;
        }
        let _ = writeln!(
            o,
            r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##
        );
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + pw / 2.0,
            H - 18.0,
            esc(&self.x_label)
        );
        let _ = writeln!(
            o,
            r#"<text transform="translate(20,{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            TOP + ph / 2.0,
            esc(&self.y_label)
        );
        for (i, s) in self.series.iter().enumerate() {
            let c = COLOURS[i % COLOURS.len()];
            let pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .copied()
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .collect();
            match self.style {
                Style::Line => {
                    let path: Vec<String> = pts
                        .iter()
                        .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
                        .collect();
                    let _ = writeln!(
                        o,
                        r#"<polyline fill="none" stroke="{c}" stroke-width="1.8" points="{}"/>"#,
                        path.join(" ")
                    );
                    if pts.len() <= 40 {
                        for &(x, y) in &pts {
                            let _ = writeln!(
                                o,
                                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{c}"/>"#,
                                sx(x),
                                sy(y)
                            );
                        }
                    }
                }
                Style::ScatterFit => {
                    for &(x, y) in &pts {
                        let _ = writeln!(
                            o,
                            r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{c}"/>"#,
                            sx(x),
                            sy(y)
                        );
                    }
                    if let Some((m, b)) = crate::stats::linear_fit(&pts) {
                        let (a, z) = (x0, x1);
                        let _ = writeln!(
                            o,
                            r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{c}" stroke-dasharray="6,4"/>"#,
                            sx(a),
                            sy(m * a + b).clamp(TOP, TOP + ph),
                            sx(z),
                            sy(m * z + b).clamp(TOP, TOP + ph)
                        );
                    }
                }
            }
            let ly = TOP + 10.0 + 20.0 * i as f64;
            let lx = LEFT + pw + 14.0;
            let _ = writeln!(
                o,
                r#"<rect x="{lx}" y="{:.1}" width="14" height="4" fill="{c}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                ly - 2.0,
                lx + 20.0,
                ly + 4.0,
                esc(&s.name)
            );
        }
        o.push_str("</svg>\n");
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(100.0, 5.0), 20.0);
        assert_eq!(tick_step(7.0, 8.0), 1.0);
        assert_eq!(fmt_tick(25000.0), "25k");
        assert_eq!(fmt_tick(0.5), "0.5");
    }

    #[test]
    fn svg_is_well_formed_enough() {
        let c = Chart::new("t <1>", "x", "y", Style::ScatterFit)
            .with("a", vec![(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]);
        let s = c.to_svg();
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert!(s.contains("t &lt;1&gt;"));
        assert_eq!(s.matches("<circle").count(), 3);
        let empty = Chart::new("e", "x", "y", Style::Line).to_svg();
        assert!(empty.contains("</svg>"));
    }
}
