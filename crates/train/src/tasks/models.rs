//! What model a task needs: the GPT or set regressor inside a model config or model, and the
//! sizes a task fills in. Errors name the field, or the model kind the task needs.

use anyhow::{Result, bail};
use attnlab_model::{Gpt, GptConfig, Model, ModelConfig, SetRegressor};

/// Checks that `model` is a set regressor over inputs of `dim` coordinates, as `task` needs;
/// the error names `model.dim` and `task.dim`, or the model kind `task` needs.
pub fn set_regressor_of_dim(model: &ModelConfig, dim: usize, task: &str) -> Result<()> {
    match model {
        ModelConfig::SetRegressor(m) if m.dim == dim => Ok(()),
        ModelConfig::SetRegressor(m) => bail!("model.dim ({}) must equal task.dim ({dim})", m.dim),
        _ => bail!("the {task} task needs model.kind = \"set_regressor\""),
    }
}

/// The GPT config inside `model`, or an error saying that `task` needs a GPT.
pub fn gpt_config<'a>(model: &'a ModelConfig, task: &str) -> Result<&'a GptConfig> {
    match model {
        ModelConfig::Gpt(g) => Ok(g),
        _ => bail!("the {task} task needs model.kind = \"gpt\""),
    }
}

/// Like [`gpt_config`], mutable (for [`Task::configure_model`]).
pub fn gpt_config_mut<'a>(model: &'a mut ModelConfig, task: &str) -> Result<&'a mut GptConfig> {
    match model {
        ModelConfig::Gpt(g) => Ok(g),
        _ => bail!("the {task} task needs model.kind = \"gpt\""),
    }
}

/// Fills a size the task decides (`model.<field>` left at 0), or checks that the configured
/// value covers what the task needs (`needed`, described by `source` in the error).
pub fn fill_at_least(field: &str, value: &mut usize, needed: usize, source: &str) -> Result<()> {
    if *value == 0 {
        *value = needed;
    } else if *value < needed {
        bail!("model.{field} {value} is smaller than {source}")
    }
    Ok(())
}

/// The GPT inside `model`, or an error saying that `task` needs one.
pub fn gpt_of<'a>(model: &'a Model, task: &str) -> Result<&'a Gpt> {
    match model.as_gpt() {
        Some(g) => Ok(g),
        None => bail!("the {task} task needs a GPT model"),
    }
}

/// The set regressor inside `model`, or an error saying that `task` needs one.
pub fn set_regressor_of<'a>(model: &'a Model, task: &str) -> Result<&'a SetRegressor> {
    match model.as_set_regressor() {
        Some(m) => Ok(m),
        None => bail!("the {task} task needs model.kind = \"set_regressor\", got `{}`", model.kind_name()),
    }
}
