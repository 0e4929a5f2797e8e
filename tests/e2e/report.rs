//! `trajforge report`: statistics computed by polars checked against the same questions asked
//! of DataFusion through `trajforge sql` and against the run manifest; the page rendered by
//! headless Chromium with every chart drawn.

use std::path::Path;

use crate::common::{python_script, quickstart_run, require_python, trajforge};

fn report_json(path: &Path, out: &Path) -> serde_json::Value {
    let o = trajforge(&[
        "--json",
        "--threads",
        "1",
        "report",
        path.to_str().expect("utf8"),
        "--out",
        out.to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary = serde_json::from_slice::<serde_json::Value>(&o.stdout).expect("json");
    // --threads reaches polars' pool, which computes the statistics.
    assert_eq!(summary["threads"], 1, "{summary}");
    summary["stats"].clone()
}

/// `trajforge sql --format json` rows.
fn sql(run: &Path, query: &str) -> Vec<serde_json::Value> {
    let o = trajforge(&[
        "sql",
        "--data",
        run.to_str().expect("utf8"),
        "--format",
        "json",
        query,
    ]);
    assert!(
        o.status.success(),
        "{query}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str::<Vec<serde_json::Value>>(&text).unwrap_or_else(|_| {
        text.lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    })
}

fn pairs(rows: &[serde_json::Value], key: &str) -> Vec<(String, u64)> {
    rows.iter()
        .map(|r| {
            (
                r[key].as_str().unwrap_or("(none)").to_string(),
                r["n"].as_u64().expect("n"),
            )
        })
        .collect()
}

fn counts(stats: &serde_json::Value, field: &str) -> Vec<(String, u64)> {
    stats[field]
        .as_array()
        .expect("counts")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().expect("name").to_string(),
                c["count"].as_u64().expect("n"),
            )
        })
        .collect()
}

#[test]
fn report_statistics_equal_datafusion_and_the_manifest() {
    let tmp = tempfile::tempdir().expect("tmp");
    let run = quickstart_run(tmp.path());
    let stats = report_json(&run, &tmp.path().join("r.html"));
    let order = "order by n desc, 1 asc";
    let tools = sql(
        &run,
        &format!("select name, count(*) n from tool_calls group by name {order}"),
    );
    assert_eq!(counts(&stats, "tool_calls"), pairs(&tools, "name"));
    let repos = sql(
        &run,
        &format!("select repo, count(*) n from trajectories group by repo {order} limit 25"),
    );
    assert_eq!(counts(&stats, "repos"), pairs(&repos, "repo"));
    let reasons = sql(
        &run,
        &format!(
            "select r, count(*) n from (select unnest(reasons) r from filtered) group by r {order}"
        ),
    );
    assert_eq!(counts(&stats, "filter_reasons"), pairs(&reasons, "r"));

    for (name, column) in [
        ("messages", "num_messages"),
        ("content bytes", "content_bytes"),
    ] {
        let row = &sql(
            &run,
            &format!(
                "select count(*) n, sum({column}) s, min({column}) lo, max({column}) hi from trajectories"
            ),
        )[0];
        let d = stats["lengths"]
            .as_array()
            .expect("lengths")
            .iter()
            .find(|d| d["name"] == name)
            .expect(name);
        assert_eq!(d["count"].as_f64(), row["n"].as_f64(), "{name}");
        assert_eq!(d["sum"].as_f64(), row["s"].as_f64(), "{name}");
        assert_eq!(
            (d["min"].as_f64(), d["max"].as_f64()),
            (row["lo"].as_f64(), row["hi"].as_f64())
        );
        let binned: u64 = d["bins"]
            .as_array()
            .expect("bins")
            .iter()
            .map(|b| b["count"].as_u64().expect("c"))
            .sum();
        assert_eq!(
            binned,
            d["count"].as_u64().expect("count"),
            "{name}: histogram loses rows"
        );
    }
    let sizes = sql(
        &run,
        "select size, count(*) n from (select near_dedupe_cluster c, count(*) size from \
        (select near_dedupe_cluster from trajectories union all select near_dedupe_cluster from filtered) \
        where near_dedupe_cluster is not null group by c) group by size order by size",
    );
    let want: Vec<serde_json::Value> = sizes
        .iter()
        .map(|r| serde_json::json!([r["size"], r["n"]]))
        .collect();
    assert_eq!(stats["clusters"]["sizes"].as_array().expect("sizes"), &want);

    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("manifest.json")).expect("m"))
            .expect("json");
    let t = &manifest["tokenize"];
    assert_eq!(stats["packing"]["tokens"], t["tokens"]);
    assert_eq!(stats["packing"]["supervised"], t["supervised_tokens"]);
    assert_eq!(stats["packing"]["rows"], t["packed_rows"]);
    assert_eq!(stats["packing"]["samples"], t["samples"]);
    assert_eq!(stats["packing"]["fill"], t["packing_fill"]);
    let ledger = &manifest["ledger"];
    assert_eq!(stats["read"], ledger["read"]);
    assert_eq!(stats["trajectories"], ledger["kept"]);
    assert_eq!(stats["filtered"], ledger["filtered"]);
    let removed: u64 = stats["funnel"]
        .as_array()
        .expect("funnel")
        .iter()
        .map(|f| f["removed"].as_u64().expect("r"))
        .sum();
    assert_eq!(removed, ledger["filtered"].as_u64().expect("filtered"));

    // A published dataset reports the same kept rows and packing.
    let dataset = tmp.path().join("ds");
    let o = trajforge(&[
        "publish",
        run.to_str().expect("utf8"),
        "--out",
        dataset.to_str().expect("utf8"),
        "-q",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let again = report_json(&dataset, &tmp.path().join("d.html"));
    assert_eq!(again["lengths"], stats["lengths"]);
    assert_eq!(again["packing"], stats["packing"]);
    assert_eq!(again["funnel"], stats["funnel"]);
}

/// The page is self-contained and every chart draws in a real browser (headless Chromium's
/// DOM after the page's load handler has run).
#[test]
#[ignore = "needs chromium (apt-get install chromium); CI runs it"]
fn report_page_draws_every_chart_in_headless_chromium() {
    let tmp = tempfile::tempdir().expect("tmp");
    let run = quickstart_run(tmp.path());
    let page = tmp.path().join("report.html");
    report_json(&run, &page);
    let html = std::fs::read_to_string(&page).expect("page");
    assert!(
        !html.contains("src=") && !html.contains("<link"),
        "the page fetches something"
    );
    let declared: usize = attribute(&html, "data-charts").parse().expect("count");
    assert!(declared >= 12, "{declared} charts");
    assert_eq!(html.matches("<figure class=\"chart\"").count(), declared);

    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            std::process::Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let chromium = chromium.unwrap_or_else(|| {
        panic!("this test needs chromium, chromium-browser or google-chrome on PATH: apt-get install chromium")
    });
    let profile = tmp.path().join("chromium-profile");
    let o = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=5000",
            "--window-size=1400,4000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dom = String::from_utf8_lossy(&o.stdout);
    let drawn: usize = attribute(&dom, "data-charts-drawn")
        .parse()
        .expect("drawn count");
    assert_eq!(drawn, declared, "charts that did not draw in the browser");
    assert_eq!(dom.matches("data-drawn=\"yes\"").count(), declared);
}

/// What the notebooks import, as `.ci/run` installs it.
const NOTEBOOKS_PIP: &str = "python3 -m pip install nbclient==0.11.0 nbformat==5.11.1 ipykernel==7.4.0 \
     polars==2.1.0 datafusion==55.0.0 pyarrow==26.0.1 numpy";

fn attribute(html: &str, name: &str) -> String {
    let key = format!("{name}=\"");
    let start = html
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in page"))
        + key.len();
    html[start..].chars().take_while(|c| *c != '"').collect()
}

/// Every notebook in `notebooks/` runs top to bottom on the bundled samples through nbclient
/// (`notebooks/run_notebooks.py`; the notebooks assert what they show).
#[test]
#[ignore = "needs python3 with nbclient, ipykernel, polars, datafusion, pyarrow; CI runs it"]
fn notebooks_run_top_to_bottom_on_the_samples() {
    require_python(
        "nbclient, nbformat, ipykernel, polars, datafusion, pyarrow, numpy",
        NOTEBOOKS_PIP,
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let bin = std::ffi::OsStr::new(env!("CARGO_BIN_EXE_trajforge"));
    let out = python_script(
        "notebooks/run_notebooks.py",
        &[bin, tmp.path().as_os_str()],
        &tmp.path().join("hf-home"),
    );
    let notebooks = std::fs::read_dir(crate::common::root().join("notebooks"))
        .expect("notebooks")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "ipynb"))
        })
        .count();
    assert!(notebooks >= 4);
    assert!(
        out.contains(&format!("all {notebooks} notebooks ran")),
        "{out}"
    );
}
