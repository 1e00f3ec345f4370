//! The latency chart: percentile curves of several runs in one SVG (written by hand, no
//! plotting dependency). X: the percentile from the median up, on a scale that spreads the
//! tail (50, 90, 99, 99.9, 99.99, max); Y: latency in milliseconds, logarithmic.

use crate::report::Run;
use std::fmt::Write;

const W: f64 = 1060.0;
const MIN_H: f64 = 540.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 390.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;
const COLORS: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#7f7f7f", "#bcbd22",
];
/// Height of one legend entry.
const LEGEND_ROW: f64 = 36.0;

/// X position (0..=3.8, from p50) of percentile `p`: log10(1 / (1 - p)) − log10(2), the max
/// drawn at the right end.
fn x_of(p: f64) -> f64 {
    let x = if p >= 100.0 {
        4.5
    } else {
        (1.0 / (1.0 - p / 100.0)).log10().min(4.3)
    };
    (x - 2f64.log10()).max(0.0)
}

/// The x of the right end (the max).
fn x_max() -> f64 {
    x_of(100.0)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An SVG of the latency curves of `runs`, titled `title`.
pub fn svg(title: &str, runs: &[&Run]) -> String {
    let points: Vec<f64> = runs
        .iter()
        .flat_map(|r| {
            r.latency
                .curve
                .iter()
                .filter(|p| p[0] >= 50.0)
                .map(|p| p[1])
        })
        .filter(|v| *v > 0.0)
        .collect();
    #[allow(non_snake_case)]
    let H = MIN_H.max(TOP + 20.0 + runs.len() as f64 * LEGEND_ROW);
    let lo = points.iter().cloned().fold(f64::MAX, f64::min).max(1e-3);
    let hi = points.iter().cloned().fold(0.0, f64::max).max(lo * 10.0);
    let (y0, y1) = (lo.log10().floor(), hi.log10().ceil());
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let px = |x: f64| LEFT + x / x_max() * plot_w;
    let py = |ms: f64| {
        let v = ms.max(lo).log10();
        TOP + plot_h - (v - y0) / (y1 - y0) * plot_h
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="28" font-size="16" text-anchor="middle">{}</text>"#,
        LEFT + plot_w / 2.0,
        escape(title)
    );
    // Y grid: every decade, with 2 and 5 between.
    let mut decade = y0;
    while decade <= y1 {
        for (m, major) in [(1.0, true), (2.0, false), (5.0, false)] {
            let v = m * 10f64.powf(decade);
            let e = v.log10();
            if e < y0 - 1e-9 || e > y1 + 1e-9 {
                continue;
            }
            let y = TOP + plot_h - (e - y0) / (y1 - y0) * plot_h;
            let color = if major { "#bbb" } else { "#e6e6e6" };
            let _ = writeln!(
                s,
                r#"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{color}"/>"#,
                LEFT + plot_w
            );
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                LEFT - 6.0,
                y + 4.0,
                trim(v)
            );
        }
        decade += 1.0;
    }
    for (p, label) in [
        (50.0, "50"),
        (90.0, "90"),
        (99.0, "99"),
        (99.9, "99.9"),
        (99.99, "99.99"),
        (100.0, "max"),
    ] {
        let x = px(x_of(p));
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#e6e6e6"/>"##,
            TOP + plot_h
        );
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"#,
            TOP + plot_h + 18.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text>"#,
        LEFT + plot_w / 2.0,
        H - 14.0
    );
    let _ = writeln!(
        s,
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">latency (ms, log scale)</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>"##
    );
    for (i, run) in runs.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = run
            .latency
            .curve
            .iter()
            .filter(|p| p[0] >= 50.0)
            .map(|p| format!("{:.1},{:.1}", px(x_of(p[0])), py(p[1])))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        let ly = TOP + 10.0 + i as f64 * LEGEND_ROW;
        let lx = LEFT + plot_w + 14.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"/>"#,
            lx + 20.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}">{}</text>"#,
            lx + 26.0,
            ly + 4.0,
            escape(&run.label)
        );
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{:.1}" fill="#555" font-size="11">{:.0}/s, p99 {} ms</text>"##,
            lx + 26.0,
            ly + 18.0,
            run.rate,
            trim(run.latency.p99_ms)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn trim(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else if v >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hist::Histogram;
    use crate::report::Latency;

    #[test]
    fn draws_one_polyline_per_run() {
        let mut h = Histogram::new();
        for v in 1..1000u64 {
            h.record_ns(v * 10_000);
        }
        let run = Run {
            label: "a <b>".into(),
            latency: Latency::of(&h),
            ..Run::default()
        };
        let svg = svg("t", &[&run, &run]);
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a &lt;b&gt;"));
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn the_tail_is_spread_out() {
        let log2 = 2f64.log10();
        assert_eq!(x_of(0.0), 0.0);
        assert_eq!(x_of(50.0), 0.0);
        assert!((x_of(90.0) - (1.0 - log2)).abs() < 1e-9);
        assert!((x_of(99.0) - (2.0 - log2)).abs() < 1e-9);
        assert_eq!(x_of(100.0), x_max());
    }
}
