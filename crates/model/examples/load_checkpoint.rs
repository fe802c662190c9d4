//! Load a checkpoint from Rust in one call and generate from it.
//!
//! `cargo run --release -p attnlab-model --example load_checkpoint -- checkpoints/RUN`
//! With no argument, it saves a fresh tiny model to a temporary directory and loads that.

use attnlab_model::{Checkpoint, GptConfig, Model, ModelConfig, Sampling, generate};
use candle_core::Device;

fn main() -> candle_core::Result<()> {
    let device = Device::Cpu;
    let tmp = std::env::temp_dir().join(format!("attnlab-example-{}", std::process::id()));
    let reference = match std::env::args().nth(1) {
        Some(r) => r,
        None => {
            let cfg = ModelConfig::Gpt(GptConfig::baby_char(65));
            let (_, params) = Model::init(&cfg, 1337, &device)?;
            Checkpoint::save(&tmp, &serde_json::json!({ "model": cfg }), &params, &[])?;
            tmp.display().to_string()
        }
    };

    let ckpt = Checkpoint::load(&reference, &device)?;
    println!("loaded {} ({} parameters): {:?}", ckpt.dir.display(), ckpt.params.n_params(), ckpt.config);
    if let Some(gpt) = ckpt.model.as_gpt() {
        let ids = generate(gpt, &[0], 16, &Sampling::default())?;
        println!("sampled token ids: {ids:?}");
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}
