//! A sweep's tuned axis (`[tune] "train.lr" = [...]`) in the report. Configurations are
//! compared at their own chosen values (the report's seed groups hold only the runs at the
//! chosen value, and a configuration's baseline is `dot` at *its* chosen value); every tried
//! value stays visible as the configuration's **selection curve**: the first seed's final
//! validation loss at each value, tabled and drawn, so a reader sees how flat the optimum is.
//! The choice was made on that same validation loss (attnlab's tasks have no test split), so
//! the first seed's number at the chosen value is optimistic by the selection; the other
//! seeds' are not.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;

use crate::baseline::settings;
use crate::group::{TaskGroup, label_without as without};
use crate::plot::{Panel, Series, line_grid};
use crate::run::Run;

/// A sweep's tuned key and which of its runs are which, as the sweep decided them
/// (`attnlab_train::sweep::tune`).
#[derive(Debug, Clone)]
pub struct Tuned {
    /// The tuned dotted key, e.g. `train.lr`.
    pub key: String,
    /// The selection runs: every tuned value at each configuration's first seed.
    pub selection: Vec<PathBuf>,
    /// The runs at each configuration's chosen value, every seed (the compared runs).
    pub chosen: Vec<PathBuf>,
}

impl Tuned {
    /// Whether `run` is at its configuration's chosen value.
    pub fn is_chosen(&self, run: &Run) -> bool {
        self.chosen.iter().any(|d| d == &run.dir)
    }

    /// The tuned value of a run config, when it is a number.
    pub fn value_of(&self, config: &Value) -> Option<f64> {
        config.pointer(&format!("/{}", self.key.replace('.', "/"))).and_then(Value::as_f64)
    }

    /// The key's last component (`lr` for `train.lr`), as seed-group labels spell it.
    pub fn short(&self) -> &str {
        crate::group::short_key(&self.key)
    }
}

/// One tried value of a selection curve.
#[derive(Debug, Clone, Serialize)]
pub struct TunePoint {
    /// The tuned value.
    pub value: f64,
    /// The selection run's final validation loss (nats); `None` when it diverged, failed or
    /// did not finish.
    pub loss: Option<f64>,
    /// The selection run's name.
    pub run: String,
}

/// One configuration's selection curve.
#[derive(Debug, Clone, Serialize)]
pub struct TuneCurve {
    /// The configuration: its seed-group label without the tuned key.
    pub label: String,
    /// The same without the metric (the panel it is drawn in); `all` when nothing else differs.
    pub setting: String,
    /// The attention metric.
    pub metric: String,
    /// Every tried value, ascending.
    pub points: Vec<TunePoint>,
    /// The chosen value (`None` while the choice is open or every selection run failed).
    pub chosen: Option<f64>,
}

/// The selection curves of `group` (every run of its task configuration, at every value), with
/// the `stopped` runs (failed in the sweep) as points without a loss.
pub fn curves(group: &TaskGroup, runs: &[Run], stopped: &[Run], tuned: &Tuned) -> Vec<TuneCurve> {
    let key_of = |run: &Run| {
        let mut key = settings(&run.config);
        key.remove(&tuned.key);
        key.insert("model.metric".into(), Value::from(run.metric()));
        key
    };
    let is_selection = |run: &Run| tuned.selection.iter().any(|d| d == &run.dir);
    let mut out: Vec<(BTreeMap<String, Value>, TuneCurve)> = Vec::new();
    let members = group.seed_groups.iter().flat_map(|sg| sg.runs.iter().map(move |&i| (&sg.label, &runs[i])));
    for (label, run) in members {
        if !is_selection(run) {
            continue;
        }
        let key = key_of(run);
        let at = match out.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None => {
                let label = without(label, &[tuned.short()]);
                let curve = TuneCurve {
                    setting: without(&label, &["metric"]),
                    label,
                    metric: run.metric(),
                    points: Vec::new(),
                    chosen: None,
                };
                out.push((key, curve));
                out.len() - 1
            }
        };
        let curve = &mut out[at].1;
        if let Some(value) = tuned.value_of(&run.config) {
            let loss = run.summary.as_ref().map(|s| s.final_val_loss).filter(|l| l.is_finite());
            curve.points.push(TunePoint { value, loss, run: run.name.clone() });
            if tuned.is_chosen(run) {
                curve.chosen = Some(value);
            }
        }
    }
    for run in stopped.iter().filter(|r| is_selection(r)) {
        let key = key_of(run);
        if let (Some((_, curve)), Some(value)) =
            (out.iter_mut().find(|(k, _)| *k == key), tuned.value_of(&run.config))
        {
            curve.points.push(TunePoint { value, loss: None, run: run.name.clone() });
        }
    }
    let mut curves: Vec<TuneCurve> = out.into_iter().map(|(_, c)| c).collect();
    for c in &mut curves {
        c.points.sort_by(|a, b| a.value.total_cmp(&b.value));
    }
    curves
}

/// Draws the selection curves of one task group: a panel per setting (the configuration without
/// its metric), a line per metric, x the tuned value on a log axis, y the first seed's final
/// validation loss; the chosen value is marked. Writes `{id}_tuning.png` / `.svg` into `dir`.
pub fn picture(dir: &Path, id: &str, key: &str, curves: &[TuneCurve]) -> Result<Vec<PathBuf>> {
    let mut settings: Vec<&str> = Vec::new();
    let mut metrics: Vec<&str> = Vec::new();
    for c in curves {
        if !settings.contains(&c.setting.as_str()) {
            settings.push(&c.setting);
        }
        if !metrics.contains(&c.metric.as_str()) {
            metrics.push(&c.metric);
        }
    }
    let titles = short_titles(&settings);
    let panels: Vec<Panel> = settings
        .iter()
        .zip(&titles)
        .map(|(s, title)| {
            let mine = curves.iter().filter(|c| c.setting == *s);
            let mut series = Vec::new();
            for c in mine {
                let color = metrics.iter().position(|m| *m == c.metric).unwrap_or(0);
                let pts: Vec<(f64, f64)> =
                    c.points.iter().filter_map(|p| p.loss.map(|l| (p.value.log10(), l))).collect();
                series.push(Series {
                    label: Some(c.metric.clone()),
                    color,
                    points: pts,
                    markers: false,
                    band: Vec::new(),
                });
                // The chosen value: the one marker on the line.
                if let Some(p) = c.points.iter().find(|p| Some(p.value) == c.chosen)
                    && let Some(l) = p.loss
                {
                    series.push(Series {
                        label: None,
                        color,
                        points: vec![(p.value.log10(), l)],
                        markers: true,
                        band: Vec::new(),
                    });
                }
            }
            Panel {
                title: title.clone(),
                x_label: format!("log10 {key}"),
                y_label: "final val loss (first seed)".into(),
                integer_x: false,
                log_y: false,
                series,
                hline: None,
            }
        })
        .collect();
    let stem = dir.join(format!("{id}_tuning"));
    let title = format!(
        "{key} tuned on the first seed's validation loss (dot: the chosen value; a missing point diverged or failed)"
    );
    line_grid(&stem, &title, &panels, (480, 320), 4)
}

/// The schedule keys a ladder lengthens with its size (their short names in labels).
const SCHEDULE: [&str; 5] = ["steps", "warmup_steps", "eval_interval", "lr_decay_steps", "ckpt_interval"];

/// Panel titles: each setting without the schedule keys (which follow the size in a ladder),
/// where the titles stay distinct without them.
fn short_titles(settings: &[&str]) -> Vec<String> {
    let mut titles: Vec<String> = settings.iter().map(|s| s.to_string()).collect();
    for key in SCHEDULE {
        let fewer: Vec<String> = titles.iter().map(|t| without(t, &[key])).collect();
        let distinct = fewer.iter().enumerate().all(|(i, a)| fewer[..i].iter().all(|b| b != a));
        if distinct {
            titles = fewer;
        }
    }
    titles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_lose_the_tuned_key_and_the_metric() {
        assert_eq!(without("metric=idw, lr=0.003, n_embd=64", &["lr"]), "metric=idw, n_embd=64");
        assert_eq!(without("metric=idw, n_embd=64", &["metric"]), "n_embd=64");
        assert_eq!(without("metric=idw", &["metric"]), "all");
    }

    #[test]
    fn panel_titles_lose_the_schedule_where_the_rest_tells_them_apart() {
        let t =
            short_titles(&["n_embd=64, steps=275, warmup_steps=14", "n_embd=96, steps=550, warmup_steps=28"]);
        assert_eq!(t, ["n_embd=64", "n_embd=96"]);
        let t = short_titles(&["n_embd=64, steps=275", "n_embd=64, steps=550"]);
        assert_eq!(t, ["n_embd=64, steps=275", "n_embd=64, steps=550"], "the schedule is all that differs");
    }

    #[test]
    fn the_tuned_value_is_read_from_the_config_by_its_dotted_key() {
        let t = Tuned { key: "train.lr".into(), selection: vec![], chosen: vec![] };
        let cfg = serde_json::json!({"train": {"lr": 0.003}});
        assert_eq!(t.value_of(&cfg), Some(0.003));
        assert_eq!(t.short(), "lr");
        assert_eq!(t.value_of(&serde_json::json!({"train": {}})), None);
    }
}
