//! One self-contained HTML page: inline SVG charts, tables and a few lines of CSS; no network
//! fetches. A short script marks each chart that the browser laid out with a non-empty size
//! (`data-drawn`) and counts them on `<body data-charts-drawn>`, which the browser test reads.

use std::fmt::Write;

use crate::ReportError;
use crate::charts::{self, number};
use crate::stats::{Distribution, Stats};

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1400px;\
color:#222}h1{font-size:1.6rem}h2{border-bottom:1px solid #ccc;padding-bottom:.2rem;margin-top:2rem}\
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.2rem .6rem;\
text-align:right}td:first-child,th:first-child{text-align:left}.grid{display:flex;flex-wrap:wrap;\
gap:1rem}figure{margin:0}p.note{color:#555;max-width:60rem}";

const SCRIPT: &str = "window.addEventListener('load',function(){var n=0;\
document.querySelectorAll('figure.chart').forEach(function(f){var s=f.querySelector('svg');\
var r=s?s.getBoundingClientRect():null;var bars=s?Array.prototype.filter.call(\
s.querySelectorAll('rect'),function(e){return e.getBoundingClientRect().width>0;}).length:0;\
if(r&&r.width>0&&r.height>0&&bars>1){f.setAttribute('data-drawn','yes');n++;}});\
document.body.setAttribute('data-charts-drawn',String(n));});";

/// Builds the report page for the directory named `title`.
pub fn render(title: &str, stats: &Stats) -> Result<String, ReportError> {
    let mut page = Page::default();
    page.summary(stats);
    page.lengths(stats)?;
    page.counts(stats)?;
    page.funnel(stats)?;
    page.clusters(stats)?;
    page.packing(stats)?;
    Ok(page.finish("trajforge report", title))
}

/// Builds the page of a training folder: loss (and eval loss) and learning rate per step, a
/// table per stage.
pub fn render_training(
    title: &str,
    curves: &crate::training::TrainingCurves,
) -> Result<String, ReportError> {
    let mut page = Page::default();
    page.heading("Stages");
    let rows = curves
        .stages
        .iter()
        .map(|s| {
            let first = s
                .loss
                .first()
                .map_or(String::new(), |p| format!("{:.4}", p.1));
            let last = s
                .loss
                .last()
                .map_or(String::new(), |p| format!("{:.4}", p.1));
            let eval = s
                .eval_loss
                .last()
                .map_or("-".to_string(), |p| format!("{:.4}", p.1));
            vec![
                s.name.clone(),
                s.loss.len().to_string(),
                first,
                last,
                eval,
                s.tokens.to_string(),
                s.supervised_tokens.to_string(),
            ]
        })
        .collect();
    page.table(
        &[
            "stage",
            "steps",
            "first loss",
            "last loss",
            "last eval loss",
            "tokens",
            "supervised",
        ],
        rows,
    );
    let points = |f: fn(&crate::training::StageCurves) -> &Vec<(u64, f64)>,
                  suffix: &str|
     -> Vec<(String, Vec<(f64, f64)>)> {
        curves
            .stages
            .iter()
            .filter(|s| !f(s).is_empty())
            .map(|s| {
                (
                    format!("{}{suffix}", s.name),
                    f(s).iter().map(|&(x, y)| (x as f64, y)).collect(),
                )
            })
            .collect()
    };
    page.heading("Loss");
    let mut loss = points(|s| &s.loss, " train");
    loss.extend(points(|s| &s.eval_loss, " eval"));
    page.chart(
        "loss",
        charts::lines("loss per optimizer step", "step", "cross-entropy", &loss)?,
    );
    page.heading("Learning rate");
    page.chart(
        "lr",
        charts::lines(
            "learning rate per optimizer step",
            "step",
            "lr",
            &points(|s| &s.lr, ""),
        )?,
    );
    page.note("The loss is the mean over each step's supervised tokens; eval points are the loss on the held-out shards.");
    Ok(page.finish("trajforge training report", title))
}

#[derive(Default)]
struct Page {
    body: String,
    charts: usize,
}

impl Page {
    /// The whole page around the body.
    fn finish(self, kind: &str, title: &str) -> String {
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>{kind}: {t}</title><style>{STYLE}</style></head>\n\
             <body data-charts=\"{n}\">\n<h1>{kind}: {t}</h1>\n{body}\
             <script>{SCRIPT}</script>\n</body></html>\n",
            t = escape(title),
            n = self.charts,
            body = self.body
        )
    }

    fn heading(&mut self, text: &str) {
        let _ = writeln!(self.body, "<h2>{}</h2>", escape(text));
    }

    fn note(&mut self, text: &str) {
        let _ = writeln!(self.body, "<p class=\"note\">{}</p>", escape(text));
    }

    fn chart(&mut self, id: &str, svg: String) {
        self.charts += 1;
        let _ = writeln!(
            self.body,
            "<figure class=\"chart\" data-chart=\"{id}\">{svg}</figure>"
        );
    }

    fn table(&mut self, header: &[&str], rows: Vec<Vec<String>>) {
        self.body.push_str("<table><tr>");
        for h in header {
            let _ = write!(self.body, "<th>{}</th>", escape(h));
        }
        self.body.push_str("</tr>\n");
        for row in rows {
            self.body.push_str("<tr>");
            for cell in row {
                let _ = write!(self.body, "<td>{}</td>", escape(&cell));
            }
            self.body.push_str("</tr>\n");
        }
        self.body.push_str("</table>\n");
    }

    fn summary(&mut self, s: &Stats) {
        self.heading("Summary");
        let mut rows = vec![
            vec!["kept trajectories".into(), s.trajectories.to_string()],
            vec!["filtered".into(), s.filtered.to_string()],
            vec!["rejected (unreadable input)".into(), s.rejected.to_string()],
            vec!["distinct repos".into(), s.distinct_repos.to_string()],
        ];
        if let Some(read) = s.read {
            rows.insert(0, vec!["rows read".into(), read.to_string()]);
        }
        if let Some(p) = &s.packing {
            rows.push(vec!["packed rows".into(), p.rows.to_string()]);
            rows.push(vec!["tokens in packed rows".into(), p.tokens.to_string()]);
        }
        self.table(&["", "rows"], rows);
    }

    fn lengths(&mut self, s: &Stats) -> Result<(), ReportError> {
        if s.lengths.is_empty() {
            return Ok(());
        }
        self.heading("Length distributions");
        let mut all: Vec<&Distribution> = s.lengths.iter().collect();
        if let Some(p) = &s.packing {
            all.push(&p.sample_tokens);
        }
        let rows = all.iter().map(|d| distribution_row(d)).collect();
        self.table(
            &["measure", "n", "mean", "min", "p50", "p90", "p99", "max"],
            rows,
        );
        self.body.push_str("<div class=\"grid\">\n");
        for d in all.iter().filter(|d| d.count > 0) {
            let svg = charts::histogram(d, &format!("{} per trajectory", d.name))?;
            self.chart(&format!("length-{}", d.name.replace(' ', "-")), svg);
        }
        self.body.push_str("</div>\n");
        Ok(())
    }

    fn counts(&mut self, s: &Stats) -> Result<(), ReportError> {
        if s.trajectories == 0 {
            return Ok(());
        }
        self.heading("Tool use, repos and sources");
        let total_calls: u64 = s.tool_calls.iter().map(|c| c.count).sum();
        self.note(&format!(
            "{total_calls} tool calls over {} kept trajectories; repos: the 25 with most \
             trajectories of {}.",
            s.trajectories, s.distinct_repos
        ));
        self.body.push_str("<div class=\"grid\">\n");
        let pairs = |v: &[crate::stats::Count], top: usize| -> Vec<(String, u64)> {
            v.iter()
                .take(top)
                .map(|c| (c.name.clone(), c.count))
                .collect()
        };
        self.chart(
            "tools",
            charts::bars("tool-use mix", "calls", &pairs(&s.tool_calls, 20))?,
        );
        self.chart(
            "tool-trajectories",
            charts::bars(
                "trajectories using each tool",
                "trajectories",
                &pairs(&s.tool_trajectories, 20),
            )?,
        );
        self.chart(
            "repos",
            charts::bars(
                "trajectories per repo",
                "trajectories",
                &pairs(&s.repos, 25),
            )?,
        );
        let sources: Vec<(String, u64)> = s
            .sources
            .iter()
            .map(|c| {
                (
                    format!("{} ({})", c.source_dataset, c.source_format),
                    c.rows,
                )
            })
            .collect();
        self.chart(
            "sources",
            charts::bars("trajectories per source", "trajectories", &sources)?,
        );
        self.chart(
            "licenses",
            charts::bars("per-row license", "trajectories", &pairs(&s.licenses, 20))?,
        );
        self.body.push_str("</div>\n");
        let rows = s
            .sources
            .iter()
            .map(|c| {
                vec![
                    c.source_dataset.clone(),
                    c.source_format.clone(),
                    c.rows.to_string(),
                ]
            })
            .collect();
        self.table(&["source dataset", "format", "rows"], rows);
        Ok(())
    }

    fn funnel(&mut self, s: &Stats) -> Result<(), ReportError> {
        if s.funnel.is_empty() && s.filter_reasons.is_empty() {
            return Ok(());
        }
        self.heading("Filter funnel");
        let rows = s
            .funnel
            .iter()
            .map(|f| {
                vec![
                    f.step.clone(),
                    f.op.clone(),
                    f.rows_in.to_string(),
                    f.rows_out.to_string(),
                    f.removed.to_string(),
                ]
            })
            .collect();
        self.table(&["step", "op", "rows in", "rows out", "removed"], rows);
        self.body.push_str("<div class=\"grid\">\n");
        if !s.funnel.is_empty() {
            let removed: Vec<(String, u64)> = s
                .funnel
                .iter()
                .map(|f| (f.step.clone(), f.removed))
                .collect();
            self.chart(
                "funnel",
                charts::bars("rows removed per step", "rows", &removed)?,
            );
        }
        if !s.filter_reasons.is_empty() {
            let reasons: Vec<(String, u64)> = s
                .filter_reasons
                .iter()
                .map(|c| (c.name.clone(), c.count))
                .collect();
            self.chart(
                "reasons",
                charts::bars("reasons on filtered rows", "rows", &reasons)?,
            );
        }
        self.body.push_str("</div>\n");
        if !s.reject_kinds.is_empty() {
            let rows = s
                .reject_kinds
                .iter()
                .map(|c| vec![c.name.clone(), c.count.to_string()])
                .collect();
            self.table(&["reject kind", "rows"], rows);
        }
        Ok(())
    }

    fn clusters(&mut self, s: &Stats) -> Result<(), ReportError> {
        let Some(c) = &s.clusters else {
            return Ok(());
        };
        self.heading("Near-duplicate clusters");
        self.note(&format!(
            "{} clusters over kept and filtered rows; {} with more than one member; the largest \
             has {} rows.",
            c.clusters, c.multi_member, c.largest
        ));
        let sizes: Vec<(String, u64)> = c
            .sizes
            .iter()
            .map(|(size, n)| (format!("size {size}"), *n))
            .collect();
        self.chart(
            "clusters",
            charts::bars("clusters by size", "clusters", &sizes)?,
        );
        Ok(())
    }

    fn packing(&mut self, s: &Stats) -> Result<(), ReportError> {
        let Some(p) = &s.packing else {
            return Ok(());
        };
        self.heading("Tokens and packing");
        let fill = p
            .fill
            .map(|f| format!("{:.2}%", 100.0 * f))
            .unwrap_or("unknown".into());
        let pack_len = p
            .pack_len
            .map(|l| l.to_string())
            .unwrap_or("unknown".into());
        self.table(
            &["", "value"],
            vec![
                vec!["packed rows".into(), p.rows.to_string()],
                vec!["samples".into(), p.samples.to_string()],
                vec!["tokens".into(), p.tokens.to_string()],
                vec!["supervised tokens".into(), p.supervised.to_string()],
                vec![
                    "supervised fraction".into(),
                    format!("{:.2}%", 100.0 * p.supervised_fraction),
                ],
                vec!["pack length".into(), pack_len],
                vec!["packing fill".into(), fill],
            ],
        );
        let split = vec![
            ("supervised (assistant)".to_string(), p.supervised),
            (
                "context (not in the loss)".to_string(),
                p.tokens - p.supervised.min(p.tokens),
            ),
        ];
        self.chart(
            "supervised",
            charts::bars("tokens in packed rows", "tokens", &split)?,
        );
        Ok(())
    }
}

fn distribution_row(d: &Distribution) -> Vec<String> {
    vec![
        d.name.clone(),
        d.count.to_string(),
        number(d.mean),
        number(d.min),
        number(d.p50),
        number(d.p90),
        number(d.p99),
        number(d.max),
    ]
}

/// HTML text escaping for table cells and headings.
pub fn escape(text: &str) -> String {
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
