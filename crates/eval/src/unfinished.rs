//! Planned runs that did not finish — failed (why, at which step) or not yet trained — listed
//! beside the report of the finished ones, so a report never hides a missing run.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use attnlab_train::sweep::Failure;
use serde_json::{Value, json};

use crate::screen::{Unreadable, unreadable_section};

/// The section heading in `report.md`.
const HEADING: &str = "## Runs that did not finish";

/// A planned run without a finished result.
#[derive(Debug, Clone)]
pub enum Unfinished {
    /// Failed; the record from its `failure.json`.
    Failed(Failure),
    /// Not finished yet (`state`: pending, running, resumable).
    NotFinished {
        /// Run name.
        name: String,
        /// Its state, as `attnlab sweep --plan` names it.
        state: String,
    },
}

impl Unfinished {
    /// One line: `NAME diverged at step S` / `NAME failed at step S: ...` / `NAME: pending`.
    pub fn line(&self) -> String {
        match self {
            Unfinished::Failed(f) => f.line(),
            Unfinished::NotFinished { name, state } => format!("{name}: {state}"),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Unfinished::Failed(f) => json!({
                "name": f.name,
                "state": if f.diverged { "diverged" } else { "failed" },
                "step": f.step,
                "error": f.error,
            }),
            Unfinished::NotFinished { name, state } => json!({"name": name, "state": state}),
        }
    }
}

fn markdown(list: &[Unfinished]) -> String {
    let mut md = format!(
        "\n{HEADING}\n\nLeft out of every table and picture above.\n\n| run | state | step | why |\n|---|---|---|---|\n"
    );
    for u in list {
        let row = match u {
            Unfinished::Failed(f) => {
                let state = if f.diverged { "diverged" } else { "failed" };
                format!(
                    "| {} | {state} | {} | {} |\n",
                    f.name,
                    f.step,
                    f.error.replace('|', "\\|").replace('\n', " ")
                )
            }
            Unfinished::NotFinished { name, state } => format!("| {name} | {state} | - | - |\n"),
        };
        md.push_str(&row);
    }
    md
}

/// Adds the unfinished runs to `report_dir/report.md` (a section) and `report.json`
/// (`"unfinished"`), and the finished runs whose checkpoint could not be read (a section,
/// `"unreadable"`). Without a report of finished runs there (`alone`), writes both files with
/// these lists only.
pub fn write(report_dir: &Path, list: &[Unfinished], unreadable: &[Unreadable], alone: bool) -> Result<()> {
    fs::create_dir_all(report_dir).with_context(|| format!("creating {}", report_dir.display()))?;
    let md_path = report_dir.join("report.md");
    let json_path = report_dir.join("report.json");
    let (mut md, mut report) = if alone {
        ("# Report\n\nNo run has finished and been read.\n".to_string(), json!({"n_runs": 0, "groups": []}))
    } else {
        let md = fs::read_to_string(&md_path).with_context(|| format!("reading {}", md_path.display()))?;
        let text =
            fs::read_to_string(&json_path).with_context(|| format!("reading {}", json_path.display()))?;
        let json = serde_json::from_str(&text).with_context(|| format!("parsing {}", json_path.display()))?;
        (md, json)
    };
    if !list.is_empty() {
        md.push_str(&markdown(list));
    }
    md.push_str(&unreadable_section(unreadable));
    if let Some(obj) = report.as_object_mut() {
        obj.insert("unfinished".into(), Value::Array(list.iter().map(Unfinished::to_json).collect()));
        if !unreadable.is_empty() {
            obj.insert("unreadable".into(), serde_json::to_value(unreadable)?);
        }
    }
    fs::write(&md_path, md).with_context(|| format!("writing {}", md_path.display()))?;
    fs::write(&json_path, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", json_path.display()))
}
