//! Server-rendered HTML for the pages (`pages`): escaping, the page frame, tables and inline
//! SVG charts. No JavaScript and nothing loaded from elsewhere: a page is one document that
//! works in any browser, `curl` and a text browser.
//!
//! Every value that reaches a page goes through [`escape`] (text and attribute values alike);
//! the functions here take plain text and escape it themselves, so a caller cannot forget.

use std::fmt::Write;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::stats::{Chart, NameCount};

/// Text as HTML: `&`, `<`, `>`, `"` and `'` replaced by character references, which makes it
/// safe in element content and in quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: `title` (text) and `body` (HTML, already escaped), as a `text/html` response.
pub(crate) fn page(title: &str, body: &str) -> Response {
    let title = escape(title);
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <nav><a href=\"/\">Status</a> · <a href=\"/stats\">Statistics</a> · \
         <a href=\"/openapi.json\">API</a> · <a href=\"/metrics\">Metrics</a></nav>\n\
         <h1>{title}</h1>\n{body}\n</body>\n</html>\n"
    );
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            // The pages need nothing from anywhere: forbid scripts and foreign content.
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'",
                ),
            ),
        ],
        html,
    )
        .into_response()
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:64em;\
padding:0 1em;color:#222}nav{margin-bottom:1em}h1{font-size:1.6em;overflow-wrap:anywhere}h2{font-size:1.2em;\
margin-top:1.6em;border-bottom:1px solid #ccc}table{border-collapse:collapse;margin:.5em 0}\
th,td{text-align:left;padding:.2em .8em .2em 0;vertical-align:top}th{font-weight:600}\
code,pre{font-family:ui-monospace,monospace;font-size:.9em}pre{background:#f4f4f4;\
padding:.6em;overflow-x:auto;white-space:pre-wrap;word-break:break-all}\
td.num{text-align:right}.muted{color:#777}svg{max-width:100%;height:auto}";

/// A two-column table of `(name, value)` text rows.
pub(crate) fn key_values<'a>(rows: impl IntoIterator<Item = (&'a str, String)>) -> String {
    let mut out = String::from("<table>\n");
    for (name, value) in rows {
        let _ = writeln!(
            out,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(name),
            escape(&value)
        );
    }
    out.push_str("</table>\n");
    out
}

/// A table with a header row; every cell is text.
pub(crate) fn table(headers: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut out = String::from("<table>\n<tr>");
    for name in headers {
        let _ = write!(out, "<th>{}</th>", escape(name));
    }
    out.push_str("</tr>\n");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", escape(&cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

/// Colours for chart lines without their own, in order.
const PALETTE: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

const CHART_WIDTH: u32 = 720;
const CHART_HEIGHT: u32 = 260;
const MARGIN_LEFT: u32 = 48;
const MARGIN_RIGHT: u32 = 12;
const MARGIN_TOP: u32 = 12;
const MARGIN_BOTTOM: u32 = 48;

/// A line chart of `chart` as inline SVG, with a `<title>` (`label`) for screen readers, the
/// first, middle and last bucket labels on the x axis, the maximum on the y axis and a legend.
pub(crate) fn line_chart(label: &str, chart: &Chart) -> String {
    let buckets = chart.labels.len();
    let max = chart
        .datasets
        .iter()
        .flat_map(|dataset| dataset.data.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let plot_width = f64::from(CHART_WIDTH - MARGIN_LEFT - MARGIN_RIGHT);
    let plot_height = f64::from(CHART_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM);
    let x = |i: usize| {
        let step = plot_width / (buckets.max(2) - 1) as f64;
        f64::from(MARGIN_LEFT) + step * i as f64
    };
    let y = |value: u64| f64::from(MARGIN_TOP) + plot_height * (1.0 - value as f64 / max as f64);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {CHART_WIDTH} {CHART_HEIGHT}\" \
         width=\"{CHART_WIDTH}\" height=\"{CHART_HEIGHT}\" role=\"img\">\n<title>{}</title>\n",
        escape(label)
    );
    let bottom = y(0);
    let _ = writeln!(
        out,
        "<line x1=\"{MARGIN_LEFT}\" y1=\"{bottom:.1}\" x2=\"{}\" y2=\"{bottom:.1}\" stroke=\"#999\"/>\
         <line x1=\"{MARGIN_LEFT}\" y1=\"{MARGIN_TOP}\" x2=\"{MARGIN_LEFT}\" y2=\"{bottom:.1}\" stroke=\"#999\"/>\
         <text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{max}</text>\
         <text x=\"{}\" y=\"{bottom:.1}\" font-size=\"11\" text-anchor=\"end\">0</text>",
        CHART_WIDTH - MARGIN_RIGHT,
        MARGIN_LEFT - 4,
        MARGIN_TOP + 4,
        MARGIN_LEFT - 4,
    );
    let mut shown: Vec<usize> = vec![0, buckets / 2, buckets.saturating_sub(1)];
    shown.dedup();
    for i in shown {
        // The outer labels grow inwards, so none is cut at the edge.
        let anchor = match i {
            0 => "start",
            i if i + 1 == buckets => "end",
            _ => "middle",
        };
        if let Some(text) = chart.labels.get(i) {
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"{anchor}\">{}</text>",
                x(i),
                bottom + 16.0,
                escape(text)
            );
        }
    }
    let mut legend_x = MARGIN_LEFT;
    for (index, dataset) in chart.datasets.iter().enumerate() {
        let color = dataset.color.unwrap_or(
            PALETTE
                .get(index % PALETTE.len())
                .copied()
                .unwrap_or("#000"),
        );
        let points: Vec<String> = dataset
            .data
            .iter()
            .enumerate()
            .map(|(i, value)| format!("{:.1},{:.1}", x(i), y(*value)))
            .collect();
        let _ = writeln!(
            out,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"><title>{}</title></polyline>",
            escape(color),
            points.join(" "),
            escape(&dataset.label)
        );
        let legend_y = CHART_HEIGHT - 8;
        let _ = writeln!(
            out,
            "<rect x=\"{legend_x}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"{legend_y}\" font-size=\"12\">{}</text>",
            legend_y - 9,
            escape(color),
            legend_x + 14,
            escape(&dataset.label)
        );
        let width = u32::try_from(dataset.label.chars().count()).unwrap_or(40);
        legend_x = legend_x.saturating_add(30 + 7 * width.min(40));
    }
    out.push_str("</svg>\n");
    out
}

/// A horizontal bar chart of `rows` as inline SVG: name, bar, count.
pub(crate) fn bar_chart(label: &str, rows: &[NameCount]) -> String {
    const ROW: u32 = 20;
    const NAME_WIDTH: u32 = 220;
    let max = rows.iter().map(|row| row.count).max().unwrap_or(0).max(1);
    let count = u32::try_from(rows.len()).unwrap_or(u32::MAX).max(1);
    let height = count.saturating_mul(ROW).saturating_add(4);
    let bar_space = f64::from(CHART_WIDTH - NAME_WIDTH - 60);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {CHART_WIDTH} {height}\" \
         width=\"{CHART_WIDTH}\" height=\"{height}\" role=\"img\">\n<title>{}</title>\n",
        escape(label)
    );
    for (i, row) in rows.iter().enumerate() {
        let top = u32::try_from(i).unwrap_or(0).saturating_mul(ROW) + 2;
        let width = bar_space * row.count as f64 / max as f64;
        let name: String = row.name.chars().take(32).collect();
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"end\">{}</text>\
             <rect x=\"{NAME_WIDTH}\" y=\"{top}\" width=\"{width:.1}\" height=\"{}\" fill=\"#1f77b4\"/>\
             <text x=\"{:.1}\" y=\"{}\" font-size=\"12\">{}</text>",
            NAME_WIDTH - 6,
            top + 13,
            escape(&name),
            ROW - 4,
            f64::from(NAME_WIDTH) + width + 4.0,
            top + 13,
            row.count
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Dataset;

    #[test]
    fn escape_covers_text_and_attributes() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn charts_escape_their_labels() {
        let chart = Chart {
            labels: vec!["<d1>".to_owned(), "d2".to_owned()],
            datasets: vec![Dataset {
                label: "<script>".to_owned(),
                data: vec![1, 3],
                color: None,
            }],
        };
        let svg = line_chart("t<", &chart);
        assert!(!svg.contains("<script>") && !svg.contains("<d1>"));
        assert!(svg.contains("&lt;script&gt;") && svg.contains("<title>t&lt;</title>"));
        let bars = bar_chart(
            "b",
            &[NameCount {
                name: "\"><x".to_owned(),
                count: 2,
            }],
        );
        assert!(bars.contains("&quot;&gt;&lt;x") && !bars.contains("\"><x"));
    }
}
