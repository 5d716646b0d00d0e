//! `--plot FILE.svg`: a run drawn as three panels over time (seconds): sent and stored
//! records per second; records lost (sequence gaps, kernel and pipeline drops) and records
//! sent but not yet stored; the collector's RSS, with the soak's fitted line. Plain SVG
//! written by hand: any browser or `rsvg-convert` shows it.

use std::fmt::Write;

use crate::timeline::Point;

/// A fitted line drawn over the RSS panel: rss(t) = intercept + slope * t, from `from_t` on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fit {
    pub from_t: f64,
    pub slope: f64,
    pub intercept: f64,
}

/// What to write around the curves.
#[derive(Clone, Debug, Default)]
pub struct PlotInfo {
    pub title: String,
    pub subtitle: String,
    /// The soak's RSS fit (bytes over seconds).
    pub rss_fit: Option<Fit>,
    /// Seconds of warm-up, shaded on the RSS panel.
    pub warmup: Option<f64>,
}

const W: f64 = 960.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 70.0;
const PANEL: f64 = 190.0;
const GAP: f64 = 75.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A round step giving about `n` intervals over `range`.
fn nice_step(range: f64, n: f64) -> f64 {
    if range <= 0.0 || !range.is_finite() {
        return 1.0;
    }
    let raw = range / n;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let k = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    k * mag
}

/// 1234567 -> "1.23M".
fn compact(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.3}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.3}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
    .replace(".000", "")
}

struct Series<'a> {
    name: &'a str,
    color: &'a str,
    dashed: bool,
    pts: Vec<(f64, f64)>,
}

struct Panel<'a> {
    title: &'a str,
    unit: &'a str,
    series: Vec<Series<'a>>,
    /// Extra line drawn in the panel's coordinates.
    fit: Option<Fit>,
    shade_until: Option<f64>,
    empty_note: &'a str,
}

/// Rates from cumulative (t, value) pairs, each over the `window` samples before it: the
/// collector's stored count moves once per flush, which sampled every second aliases into
/// spikes; a few seconds' window shows the rate it keeps.
fn rates(pts: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    (1..pts.len())
        .filter_map(|i| {
            let (a, b) = (pts[i.saturating_sub(window)], pts[i]);
            (b.0 > a.0).then(|| (b.0, (b.1 - a.1) / (b.0 - a.0)))
        })
        .collect()
}

/// Samples the rates are averaged over.
const RATE_WINDOW: usize = 5;

/// The SVG document.
pub fn svg(points: &[Point], info: &PlotInfo) -> String {
    let cum = |f: &dyn Fn(&Point) -> Option<f64>| -> Vec<(f64, f64)> {
        points.iter().filter_map(|p| Some((p.t, f(p)?))).collect()
    };
    let sent = cum(&|p| Some(p.sent as f64));
    let stored = cum(&|p| p.stored());
    let lost = cum(&|p| p.lost());
    let backlog = cum(&|p| Some(p.sent as f64 - p.stored()?));
    let mib = 1024.0 * 1024.0;
    let rss = cum(&|p| p.rss.map(|b| b as f64 / mib));
    let panels = [
        Panel {
            title: "Records per second",
            unit: "records/s, 5 s average",
            series: vec![
                Series {
                    name: "sent",
                    color: "#1f77b4",
                    dashed: false,
                    pts: rates(&sent, RATE_WINDOW),
                },
                Series {
                    name: "stored (flushed)",
                    color: "#2ca02c",
                    dashed: false,
                    pts: rates(&stored, RATE_WINDOW),
                },
            ],
            fit: None,
            shade_until: None,
            empty_note: "",
        },
        Panel {
            title: "Loss (cumulative)",
            unit: "records",
            series: vec![
                Series {
                    name: "lost: sequence gaps + kernel + pipeline drops",
                    color: "#d62728",
                    dashed: false,
                    pts: lost,
                },
                Series {
                    name: "sent, not yet stored",
                    color: "#7f7f7f",
                    dashed: true,
                    pts: backlog,
                },
            ],
            fit: None,
            shade_until: None,
            empty_note: "collector counters not sampled (no --metrics)",
        },
        Panel {
            title: "Collector resident memory",
            unit: "MiB",
            series: vec![Series {
                name: "RSS",
                color: "#9467bd",
                dashed: false,
                pts: rss,
            }],
            fit: info.rss_fit.map(|f| Fit {
                from_t: f.from_t,
                slope: f.slope / mib,
                intercept: f.intercept / mib,
            }),
            shade_until: info.warmup,
            empty_note: "RSS not sampled (give --collector-pid, or use soak)",
        },
    ];
    let t_max = points.iter().map(|p| p.t).fold(1.0f64, f64::max);
    let h = TOP + 3.0 * PANEL + 3.0 * GAP;
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{LEFT}" y="24" font-size="17" font-weight="bold">{}</text>
<text x="{LEFT}" y="44" font-size="12" fill="#444">{}</text>
"##,
        esc(&info.title),
        esc(&info.subtitle)
    );
    let pw = W - LEFT - RIGHT;
    let x_step = nice_step(t_max, 10.0);
    for (i, p) in panels.iter().enumerate() {
        let y0 = TOP + i as f64 * (PANEL + GAP);
        let _ = writeln!(
            s,
            r#"<text x="{LEFT}" y="{}" font-size="13" font-weight="bold">{} ({})</text>"#,
            y0 - 8.0,
            esc(p.title),
            esc(p.unit)
        );
        let mut y_max = p
            .series
            .iter()
            .flat_map(|s| s.pts.iter().map(|&(_, v)| v))
            .chain(p.fit.iter().map(|f| f.intercept + f.slope * t_max))
            .fold(0.0f64, f64::max);
        if y_max <= 0.0 {
            y_max = 1.0;
        }
        let y_step = nice_step(y_max, 4.0);
        let y_top = (y_max / y_step).ceil() * y_step;
        let sx = |t: f64| LEFT + t / t_max * pw;
        let sy = |v: f64| y0 + PANEL - v / y_top * PANEL;
        let _ = writeln!(
            s,
            "<rect x=\"{LEFT}\" y=\"{y0}\" width=\"{pw}\" height=\"{PANEL}\" fill=\"#fafafa\" stroke=\"#999\"/>"
        );
        if let Some(w) = p.shade_until.filter(|&w| w > 0.0) {
            let _ = writeln!(
                s,
                "<rect x=\"{LEFT}\" y=\"{y0}\" width=\"{:.1}\" height=\"{PANEL}\" fill=\"#eeeeee\"/><text x=\"{:.1}\" y=\"{:.1}\" fill=\"#777\">warm-up</text>",
                (sx(w.min(t_max)) - LEFT).max(0.0),
                LEFT + 6.0,
                y0 + 16.0
            );
        }
        // Grid and axes.
        let mut v = 0.0;
        while v <= y_top + y_step * 0.01 {
            let y = sy(v);
            let _ = writeln!(
                s,
                "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                LEFT + pw,
                LEFT - 6.0,
                y + 4.0,
                compact(v)
            );
            v += y_step;
        }
        let mut t = 0.0;
        while t <= t_max + x_step * 0.01 {
            let x = sx(t);
            let _ = writeln!(
                s,
                "<line x1=\"{x:.1}\" y1=\"{y0}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                y0 + PANEL,
                y0 + PANEL + 15.0,
                compact(t)
            );
            t += x_step;
        }
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#444\">seconds</text>",
            LEFT + pw,
            y0 + PANEL + 36.0
        );
        let has_data = p.series.iter().any(|s| !s.pts.is_empty());
        if !has_data {
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#777\">{}</text>",
                LEFT + pw / 2.0,
                y0 + PANEL / 2.0,
                esc(p.empty_note)
            );
        }
        for (k, ser) in p.series.iter().enumerate() {
            if !ser.pts.is_empty() {
                let path: Vec<String> = ser
                    .pts
                    .iter()
                    .map(|&(t, v)| format!("{:.1},{:.1}", sx(t), sy(v.max(0.0))))
                    .collect();
                let _ = writeln!(
                    s,
                    "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{} points=\"{}\"/>",
                    ser.color,
                    if ser.dashed {
                        " stroke-dasharray=\"6 4\""
                    } else {
                        ""
                    },
                    path.join(" ")
                );
            }
            let lx = LEFT + 10.0 + k as f64 * 330.0;
            let ly = y0 + PANEL + 36.0;
            let _ = writeln!(
                s,
                "<line x1=\"{lx:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{}\" stroke-width=\"3\"{}/><text x=\"{:.1}\" y=\"{ly:.1}\">{}</text>",
                ly - 4.0,
                lx + 22.0,
                ly - 4.0,
                ser.color,
                if ser.dashed { " stroke-dasharray=\"6 4\"" } else { "" },
                lx + 28.0,
                esc(ser.name)
            );
        }
        if let Some(f) = p.fit {
            let (a, b) = (f.from_t.min(t_max), t_max);
            let _ = writeln!(
                s,
                "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#ff7f0e\" stroke-width=\"2\" stroke-dasharray=\"8 4\"/>",
                sx(a),
                sy(f.intercept + f.slope * a),
                sx(b),
                sy(f.intercept + f.slope * b)
            );
            let lx = LEFT + 10.0 + 330.0;
            let ly = y0 + PANEL + 36.0;
            let _ = writeln!(
                s,
                "<line x1=\"{lx:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#ff7f0e\" stroke-width=\"3\" stroke-dasharray=\"8 4\"/><text x=\"{:.1}\" y=\"{ly:.1}\">least-squares fit after warm-up: {:+.3} MiB/min</text>",
                ly - 4.0,
                lx + 22.0,
                ly - 4.0,
                lx + 28.0,
                f.slope * 60.0
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Snapshot;

    #[test]
    fn steps_and_numbers() {
        assert_eq!(nice_step(100.0, 10.0), 10.0);
        assert_eq!(nice_step(90.0, 10.0), 10.0);
        assert_eq!(nice_step(37.0, 4.0), 10.0);
        assert_eq!(nice_step(0.0, 4.0), 1.0);
        assert_eq!(compact(1_234_567.0), "1.235M");
        assert_eq!(compact(25_000.0), "25.0k");
        assert_eq!(compact(5.0), "5");
    }

    #[test]
    fn draws_every_series() {
        let points: Vec<Point> = (0..10)
            .map(|i| Point {
                t: f64::from(i),
                sent: 1000 * i as u64,
                sent_options: 0,
                collector: Some(Snapshot {
                    stored_records: Some(f64::from(900 * i)),
                    exporter_missing: Some(0.0),
                    kernel_drops: Some(f64::from(i)),
                    pipeline_drops: Some(0.0),
                    ..Snapshot::default()
                }),
                rss: Some((40 + i as u64) << 20),
            })
            .collect();
        let doc = svg(
            &points,
            &PlotInfo {
                title: "t <&> \"x\"".into(),
                subtitle: String::new(),
                rss_fit: Some(Fit {
                    from_t: 3.0,
                    slope: f64::from(1 << 20),
                    intercept: f64::from(40 << 20),
                }),
                warmup: Some(3.0),
            },
        );
        assert!(doc.starts_with("<svg") && doc.trim_end().ends_with("</svg>"));
        assert!(doc.contains("t &lt;&amp;&gt; &quot;x&quot;"));
        assert_eq!(
            doc.matches("<polyline").count(),
            5,
            "sent, stored, lost, backlog, RSS"
        );
        assert!(doc.contains("+60.000 MiB/min"));
        assert!(doc.contains("warm-up"));
        let none = svg(&[], &PlotInfo::default());
        assert!(none.contains("not sampled"));
    }
}
