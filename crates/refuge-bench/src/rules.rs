//! `refuge-bench rules`: the rules engine at the scale of a whole exodus. Generates a synthetic
//! caseload, writes it as CSV and as .rcl, then measures: loading each, evaluating every
//! shipped programme plus the reform over every person (columnar, both cores), one explained
//! decision, and the whole `refuge simulate` command from CSV as a separate process (wall time
//! and its own peak memory).

use anyhow::{Context, Result, bail};
use refuge_rules::caseload::Caseload;
use refuge_rules::columnar::{compile_programme, evaluate, evaluate_all};
use refuge_rules::library::Library;
use refuge_rules::programme::decide;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Clone, Debug)]
pub struct RulesArgs {
    /// People in the synthetic caseload.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: usize,
    /// Seed of the synthetic caseload.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Evaluation date.
    #[arg(long, default_value = "2026-11-22")]
    pub on: String,
    /// Programmes directory.
    #[arg(long, default_value = "programmes")]
    pub programmes: PathBuf,
    /// Times each evaluation is repeated (the median is reported).
    #[arg(long, default_value_t = 7)]
    pub repeat: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

pub fn run(a: RulesArgs) -> Result<()> {
    let on = refuge_core::facts::parse_date(&a.on).context("--on: expected YYYY-MM-DD")?;
    let lib = Library::load(&a.programmes).map_err(|e| {
        anyhow::anyhow!(
            "programmes do not load: {}",
            e.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    let dir = tempfile::tempdir()?;
    let csv = dir.path().join("caseload.csv");
    let rcl = dir.path().join("caseload.rcl");
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());

    let t = Instant::now();
    let synthetic = refuge_rules::synth::synth(a.rows, a.seed, on);
    let synth_s = t.elapsed().as_secs_f64();
    synthetic.write_csv(
        std::io::BufWriter::new(std::fs::File::create(&csv)?),
        &|_| {},
    )?;
    synthetic.write_binary(
        std::io::BufWriter::new(std::fs::File::create(&rcl)?),
        &|_| {},
    )?;
    drop(synthetic);
    let csv_bytes = std::fs::metadata(&csv)?.len();
    let rcl_bytes = std::fs::metadata(&rcl)?.len();

    let t = Instant::now();
    let from_csv = Caseload::from_path(&csv, &|_| {})?;
    let csv_load_s = t.elapsed().as_secs_f64();
    drop(from_csv);
    let t = Instant::now();
    let caseload = Caseload::from_path(&rcl, &|_| {})?;
    let rcl_load_s = t.elapsed().as_secs_f64();

    // Every programme, and the shipped reform applied to its programme.
    let mut programmes: Vec<_> = lib.programmes.values().cloned().collect();
    for r in lib.reforms.values() {
        if let Some(p) = lib.programmes.get(&r.reform_of) {
            programmes.push(p.with_reform(r).map_err(anyhow::Error::msg)?);
        }
    }
    // All together, as `refuge simulate` evaluates them: compile for the date, then one pass.
    let mut times = Vec::new();
    let mut eligible = Vec::new();
    for _ in 0..a.repeat.max(1) {
        let t = Instant::now();
        let compiled: Vec<_> = programmes
            .iter()
            .map(|p| compile_programme(p, on))
            .collect::<Result<_, _>>()?;
        let outcomes = evaluate_all(&compiled, &caseload, threads);
        times.push(t.elapsed().as_secs_f64());
        eligible = outcomes.iter().map(|o| o.counts().0).collect();
    }
    // Each programme on its own (its own pass, nothing shared).
    let mut each = Vec::new();
    for p in &programmes {
        let mut ts = Vec::new();
        for _ in 0..a.repeat.max(1) {
            let t = Instant::now();
            let compiled = compile_programme(p, on)?;
            std::hint::black_box(evaluate(&compiled, &caseload, threads));
            ts.push(t.elapsed().as_secs_f64());
        }
        let id = std::iter::once(p.id.clone())
            .chain(p.reforms.iter().cloned())
            .collect::<Vec<_>>()
            .join("+");
        each.push((id, median(ts)));
    }
    let eval_s = median(times);

    // One explained decision: every programme for one person, repeatedly.
    let person = caseload.row(a.rows / 2).context("row")?;
    let mut per = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        for p in &programmes {
            std::hint::black_box(decide(p, &person, on, "en"));
        }
        per.push(t.elapsed().as_secs_f64() / programmes.len() as f64);
    }
    let decision_s = median(per);
    let heap_mib = caseload.heap_bytes() as f64 / (1 << 20) as f64;
    drop(caseload);

    // The whole command, as a user runs it.
    let exe = std::env::current_exe()?.with_file_name("refuge");
    if !exe.exists() {
        bail!(
            "{} not found: build it first with `cargo build --release -p refuge`",
            exe.display()
        );
    }
    let reform_ids: Vec<String> = lib.reforms.keys().cloned().collect();
    let mut cmd = std::process::Command::new(&exe);
    cmd.arg("--programmes")
        .arg(&a.programmes)
        .args(["simulate", "--caseload"])
        .arg(&csv)
        .args(["--on", &a.on, "--format", "json"]);
    for r in &reform_ids {
        cmd.args(["--reform", r]);
    }
    let t = Instant::now();
    let out = cmd.output()?;
    let command_s = t.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "refuge simulate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let sim: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let peak_mib = sim["peak_memory_mib"].as_f64();

    let report = serde_json::json!({
        "rows": a.rows, "threads": threads, "programmes_evaluated": programmes.len(),
        "synth_seconds": synth_s, "csv_bytes": csv_bytes, "rcl_bytes": rcl_bytes,
        "csv_load_seconds": csv_load_s, "rcl_load_seconds": rcl_load_s, "caseload_heap_mib": heap_mib,
        "evaluation_seconds": eval_s, "eligible": eligible,
        "evaluation_seconds_each": each.iter().map(|(id, s)| serde_json::json!({"programme": id, "seconds": s})).collect::<Vec<_>>(),
        "explained_decision_seconds": decision_s,
        "simulate_command_seconds": command_s, "simulate_peak_memory_mib": peak_mib,
        "simulate_load_seconds": sim["load_seconds"], "simulate_evaluation_seconds": sim["evaluation_seconds"],
    });
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "refuge-bench rules: {} people, {} programmes (with the reform), {threads} threads",
        a.rows,
        programmes.len()
    );
    println!("  synthetic caseload generated in     {:>9.3} s", synth_s);
    println!(
        "  CSV  {:>6.1} MiB loaded in           {:>9.3} s",
        csv_bytes as f64 / 1048576.0,
        csv_load_s
    );
    println!(
        "  .rcl {:>6.1} MiB loaded in           {:>9.3} s",
        rcl_bytes as f64 / 1048576.0,
        rcl_load_s
    );
    println!(
        "  caseload in memory                  {:>9.1} MiB",
        heap_mib
    );
    println!(
        "  evaluation, all programmes + reform {:>9.2} ms (median of {})",
        eval_s * 1000.0,
        a.repeat.max(1)
    );
    for (id, s) in &each {
        println!("    {:<40} {:>9.2} ms alone", id, s * 1000.0);
    }
    println!(
        "  one explained decision              {:>9.1} µs",
        decision_s * 1e6
    );
    println!(
        "  `refuge simulate` from CSV          {:>9.3} s, peak memory {}",
        command_s,
        peak_mib.map_or("unknown".into(), |m| format!("{m:.0} MiB"))
    );
    println!("  eligible per programme: {eligible:?}");
    Ok(())
}
