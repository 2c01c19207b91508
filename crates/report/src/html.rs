//! The inventory as one self-contained HTML file a person reads: inline CSS, SVG charts drawn
//! with plotters' SVG backend (no fonts loaded, no network), and a little inline JavaScript that
//! filters and pages the endpoint table offline (the page is complete without it).
//!
//! It stays readable with 10,000 endpoints: the table holds the [`TABLE_ROWS`] most called
//! ones, 50 to a page, and says how many endpoints and requests are left out of it (and how many
//! went past the inventory's cap). When the script has run, `<body data-ready="1">` tells a test
//! (headless Chromium) that it ran without error.

use crate::inventory::{EndpointStats, Inventory};
use crate::ReportError;
use plotters::prelude::*;
use std::fmt::Write as _;
use vxtap_http::Flag;
use vxtap_sink::format::rfc3339_us;

/// Endpoints listed in the table.
pub const TABLE_ROWS: usize = 2000;
/// Endpoints whose latency histogram is drawn.
const HISTOGRAM_CHARTS: usize = 6;

/// HTML-escapes `s` into `out`.
fn esc(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
}

fn ms(us: Option<u64>) -> String {
    match us {
        Some(us) => format!("{:.1}", us as f64 / 1000.0),
        None => "–".into(),
    }
}

fn chart_err<E: std::fmt::Debug>(e: E) -> ReportError {
    ReportError::Chart(format!("{e:?}"))
}

/// Log-spaced latency buckets (upper bound in µs, count).
fn latency_buckets(s: &EndpointStats) -> Vec<(u64, u64)> {
    if s.latency.is_empty() {
        return Vec::new();
    }
    s.latency
        .iter_log(100, 2.0)
        .map(|v| (v.value_iterated_to(), v.count_since_last_iteration()))
        .collect()
}

fn histogram_svg(title: &str, s: &EndpointStats) -> Result<String, ReportError> {
    let buckets = latency_buckets(s);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (420, 220)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err)?;
        let max = buckets.iter().map(|b| b.1).max().unwrap_or(1).max(1);
        let n = buckets.len().max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 13))
            .margin(6)
            .x_label_area_size(28)
            .y_label_area_size(44)
            .build_cartesian_2d(0..n, 0..max + max / 10 + 1)
            .map_err(chart_err)?;
        let labels: Vec<String> = buckets.iter().map(|b| ms(Some(b.0))).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("latency ≤ ms")
            .x_labels(n.min(8))
            .x_label_formatter(&|i| labels.get(*i).cloned().unwrap_or_default())
            .draw()
            .map_err(chart_err)?;
        chart
            .draw_series(buckets.iter().enumerate().map(|(i, b)| {
                Rectangle::new([(i, 0), (i + 1, b.1)], RGBColor(70, 110, 200).filled())
            }))
            .map_err(chart_err)?;
        root.present().map_err(chart_err)?;
    }
    Ok(svg)
}

fn timeline_svg(inv: &Inventory) -> Result<String, ReportError> {
    let t = &inv.timeline;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (860, 240)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err)?;
        let first = t.buckets.keys().next().copied().unwrap_or(0);
        let last = t.buckets.keys().next_back().copied().unwrap_or(0);
        let width_s = t.width_ns as f64 / 1e9;
        let max_n = t.buckets.values().map(|b| b.0).max().unwrap_or(1).max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("requests (blue) and errors: 5xx or no response (red) per {width_s:.0} s"),
                ("sans-serif", 13),
            )
            .margin(6)
            .x_label_area_size(28)
            .y_label_area_size(50)
            .build_cartesian_2d(
                0f64..((last - first + 1) as f64 * width_s),
                0u64..max_n + max_n / 10 + 1,
            )
            .map_err(chart_err)?;
        chart
            .configure_mesh()
            .x_desc("seconds from the first exchange")
            .draw()
            .map_err(chart_err)?;
        let pts = |f: fn(&(u64, u64)) -> u64| -> Vec<(f64, u64)> {
            (first..=last)
                .map(|k| {
                    let b = t.buckets.get(&k).copied().unwrap_or((0, 0));
                    ((k - first) as f64 * width_s, f(&b))
                })
                .collect()
        };
        chart
            .draw_series(LineSeries::new(
                pts(|b| b.0),
                RGBColor(70, 110, 200).stroke_width(2),
            ))
            .map_err(chart_err)?;
        chart
            .draw_series(LineSeries::new(pts(|b| b.1), RED.stroke_width(2)))
            .map_err(chart_err)?;
        root.present().map_err(chart_err)?;
    }
    Ok(svg)
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td.l,th.l{text-align:left;font-family:ui-monospace,monospace;max-width:520px;overflow-wrap:anywhere}
th{background:#f0f0f0}.charts{display:flex;flex-wrap:wrap;gap:8px}.note{color:#666}
.err{color:#b00}#pager button{margin:0 4px}";

const SCRIPT: &str = "(function(){
var rows=[].slice.call(document.querySelectorAll('#endpoints tbody tr'));
var size=50,page=0,shown=rows;
var filter=document.getElementById('filter'),info=document.getElementById('pageinfo');
function draw(){var pages=Math.max(1,Math.ceil(shown.length/size));if(page>=pages)page=pages-1;
rows.forEach(function(r){r.style.display='none';});
shown.slice(page*size,(page+1)*size).forEach(function(r){r.style.display='';});
info.textContent='page '+(page+1)+' of '+pages+' ('+shown.length+' endpoints)';}
filter.addEventListener('input',function(){var q=filter.value.toLowerCase();
shown=rows.filter(function(r){return r.cells[0].textContent.toLowerCase().indexOf(q)>=0;});page=0;draw();});
document.getElementById('prev').addEventListener('click',function(){if(page>0){page--;draw();}});
document.getElementById('next').addEventListener('click',function(){page++;draw();});
draw();document.body.setAttribute('data-ready','1');})();";

/// Renders the report.
pub fn render(inv: &Inventory, title: &str, inputs: &[String]) -> Result<String, ReportError> {
    let mut h = String::with_capacity(64 * 1024);
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>");
    esc(&mut h, title);
    let _ = write!(
        h,
        "</title><style>{STYLE}</style></head>\n<body data-ready=\"0\">\n<h1>"
    );
    esc(&mut h, title);
    h.push_str("</h1>\n<p class=\"note\">Inputs: ");
    esc(&mut h, &inputs.join(", "));
    h.push_str("</p>\n");
    let all = &inv.all;
    let span = if all.count > 0 {
        format!(
            "{} to {}",
            rfc3339_us(all.first_ns).as_str(),
            rfc3339_us(all.last_ns).as_str()
        )
    } else {
        "no exchanges".into()
    };
    let _ = writeln!(
        h,
        "<table><tr><th class=l>exchanges</th><td>{}</td></tr><tr><th class=l>endpoints</th><td>{}</td></tr>\
<tr><th class=l>time</th><td>{span}</td></tr><tr><th class=l>errors (5xx or no response)</th><td>{}</td></tr>\
<tr><th class=l>4xx</th><td>{}</td></tr><tr><th class=l>latency p50 / p95 / p99 ms</th><td>{} / {} / {}</td></tr>\
<tr><th class=l>responses without their request</th><td>{}</td></tr>\
<tr><th class=l>exchanges past the endpoint cap</th><td>{}</td></tr></table>",
        all.count,
        inv.endpoints.map.len(),
        all.errors(),
        all.client_errors(),
        ms(all.quantile_us(0.5)),
        ms(all.quantile_us(0.95)),
        ms(all.quantile_us(0.99)),
        inv.without_request,
        inv.endpoints.overflowed,
    );
    h.push_str("<h2>Error rate over time</h2>\n");
    h.push_str(&timeline_svg(inv)?);
    let ranked = inv.ranked();
    h.push_str("\n<h2>Latency histograms</h2>\n<div class=\"charts\">");
    h.push_str(&histogram_svg("all endpoints", all)?);
    for (k, s) in ranked.iter().take(HISTOGRAM_CHARTS - 1) {
        h.push_str(&histogram_svg(&k.to_string(), s)?);
    }
    h.push_str("</div>\n<h2>Endpoints</h2>\n");
    let listed = ranked.len().min(TABLE_ROWS);
    let rest: u64 = ranked.iter().skip(TABLE_ROWS).map(|(_, s)| s.count).sum();
    if ranked.len() > TABLE_ROWS {
        let _ = writeln!(
            h,
            "<p class=\"note\">The {listed} most called endpoints are listed; {} more endpoints with {rest} requests are not.</p>",
            ranked.len() - listed
        );
    }
    if inv.endpoints.overflowed > 0 {
        let _ = writeln!(
            h,
            "<p class=\"note\">{} exchanges of further endpoints went past the endpoint cap and are counted together.</p>",
            inv.endpoints.overflowed
        );
    }
    h.push_str(
        "<p><input id=\"filter\" placeholder=\"filter endpoints\" aria-label=\"filter endpoints\"> \
<span id=\"pager\"><button id=\"prev\">‹ prev</button><span id=\"pageinfo\"></span><button id=\"next\">next ›</button></span></p>\n\
<table id=\"endpoints\"><thead><tr><th class=l>endpoint</th><th>requests</th><th>2xx</th><th>3xx</th><th>4xx</th>\
<th>5xx</th><th>no response</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th class=l>top flags</th></tr></thead><tbody>\n",
    );
    for (k, s) in ranked.iter().take(TABLE_ROWS) {
        let class = |c: u16| -> u64 {
            s.statuses
                .range(c * 100..c * 100 + 100)
                .map(|(_, n)| n)
                .sum()
        };
        h.push_str("<tr><td class=l>");
        esc(&mut h, &k.to_string());
        let _ = write!(
            h,
            "</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=l>",
            s.count,
            class(2),
            class(3),
            class(4),
            if class(5) > 0 { "err" } else { "" },
            class(5),
            s.no_response,
            ms(s.quantile_us(0.5)),
            ms(s.quantile_us(0.95)),
            ms(s.quantile_us(0.99)),
        );
        let mut flags: Vec<(u64, Flag)> = Flag::ALL
            .iter()
            .filter(|f| s.flags[f.index()] > 0)
            .map(|f| (s.flags[f.index()], *f))
            .collect();
        flags.sort_by_key(|f| std::cmp::Reverse(f.0));
        let text: Vec<String> = flags
            .iter()
            .take(3)
            .map(|(n, f)| format!("{} {n}", f.as_str()))
            .collect();
        esc(&mut h, &text.join(", "));
        h.push_str("</td></tr>\n");
    }
    if inv.endpoints.overflowed > 0 {
        // Outside the paged body: always shown, whatever the filter.
        let o = &inv.endpoints.overflow;
        let _ = write!(
            h,
            "</tbody><tfoot><tr><td class=l>(endpoints past the cap)</td><td>{}</td><td colspan=4></td>\
<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td></td></tr></tfoot>",
            o.count,
            o.no_response,
            ms(o.quantile_us(0.5)),
            ms(o.quantile_us(0.95)),
            ms(o.quantile_us(0.99)),
        );
        h.push_str("<tbody>");
    }
    h.push_str("</tbody></table>\n<h2>Flags</h2>\n<table><tr><th class=l>flag</th><th>exchanges</th></tr>\n");
    for f in Flag::ALL {
        let n = all.flags[f.index()];
        if n > 0 {
            let _ = writeln!(h, "<tr><td class=l>{}</td><td>{n}</td></tr>", f.as_str());
        }
    }
    h.push_str("</table>\n<h2>VNIs</h2>\n<table><tr><th class=l>VNI</th><th>exchanges</th></tr>\n");
    for (v, n) in &inv.vnis {
        let v = v.map_or("none".to_string(), |v| v.to_string());
        let _ = writeln!(h, "<tr><td class=l>{v}</td><td>{n}</td></tr>");
    }
    h.push_str("</table>\n<h2>Mirror sources</h2>\n<table><tr><th class=l>source</th><th>exchanges</th></tr>\n");
    for (ip, n) in &inv.mirror_sources {
        let ip = ip.map_or("none".to_string(), |ip| ip.to_string());
        let _ = writeln!(h, "<tr><td class=l>{ip}</td><td>{n}</td></tr>");
    }
    if inv.labels_overflow > 0 {
        let _ = writeln!(
            h,
            "</table><p class=\"note\">{} exchanges had a VNI or mirror source past the cap.</p>",
            inv.labels_overflow
        );
    } else {
        h.push_str("</table>\n");
    }
    let _ = write!(h, "<script>{SCRIPT}</script>\n</body></html>\n");
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::ex;

    #[test]
    fn renders_tables_charts_and_escapes() {
        let mut inv = Inventory::new(100);
        for i in 0..50 {
            inv.add(&ex(
                "GET",
                "/a<script>",
                if i % 5 == 0 { 500 } else { 200 },
                None,
                i,
                5 + i,
            ));
        }
        let html = render(&inv, "t & t", &["x.pcap".into()]).unwrap();
        assert!(html.contains("GET /a&lt;script&gt;"));
        assert!(!html.contains("/a<script>"));
        assert!(html.contains("<svg"));
        assert!(html.contains("t &amp; t"));
        assert!(!html.contains("http://") || html.contains("http://www.w3.org/2000/svg"));
    }

    #[test]
    fn ten_thousand_endpoints_stay_readable() {
        let mut inv = Inventory::new(10_000);
        for i in 0..12_000u64 {
            // Three literal levels with few values each, so that every path stays its own
            // template (ids would collapse into one `/e/{id}`).
            let code = |n: u64| {
                let n = n as u8;
                format!("{}{}", char::from(b'a' + n / 26), char::from(b'a' + n % 26))
            };
            let path = format!(
                "/e/s{}/t{}/u{}",
                code(i / 600),
                code((i / 30) % 20),
                code(i % 30)
            );
            inv.add(&ex("GET", &path, 200, None, i % 600, 1 + i % 50));
        }
        let html = render(&inv, "big", &[]).unwrap();
        assert_eq!(html.matches("<tr><td class=l>GET /e/").count(), TABLE_ROWS);
        assert!(html.contains("8000 more endpoints with 8000 requests are not"));
        assert!(html.contains("2000 exchanges of further endpoints went past the endpoint cap"));
        assert!(html.contains("(endpoints past the cap)</td><td>2000</td>"));
        assert!(html.len() < 2_000_000, "{}", html.len());
    }

    #[test]
    fn an_empty_inventory_renders() {
        let html = render(&Inventory::new(10), "empty", &[]).unwrap();
        assert!(html.contains("no exchanges"));
    }
}
