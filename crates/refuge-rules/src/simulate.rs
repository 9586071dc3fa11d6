//! Simulation: every programme, and each reform against its baseline, over a whole caseload,
//! with who gains or loses eligibility and breakdowns by nationality, age band, refusal and
//! current country. Counting is done on bitmaps (popcounts), never person by person per
//! programme.

use crate::columnar::{Columns, Outcomes, Unsupported, compile_programme, evaluate_all};
use crate::programme::{Programme, Reform, RuleKind};
use refuge_core::country::Country;
use refuge_core::facts::Fact;
use serde::Serialize;
use std::time::Instant;
use time::Date;

/// Counts of one group (or of everyone).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Eligible.
    pub eligible: u64,
    /// Not eligible.
    pub ineligible: u64,
    /// Undetermined.
    pub undetermined: u64,
    /// Eligible under the reform but not the baseline (reforms only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newly_eligible: Option<u64>,
    /// Eligible under the baseline but not the reform (reforms only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newly_ineligible: Option<u64>,
}

/// One group of a breakdown.
#[derive(Clone, Debug, Serialize)]
pub struct Group {
    /// The group's key (e.g. `RU`, `18-27`, `deserted`, `unknown`).
    pub key: String,
    /// Its counts.
    #[serde(flatten)]
    pub counts: Counts,
}

/// The result for one programme, or one programme with a reform.
#[derive(Clone, Debug, Serialize)]
pub struct ProgrammeResult {
    /// Programme id; with a reform, `programme+reform`.
    pub id: String,
    /// For a reform: the baseline it is compared with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// Everyone.
    #[serde(flatten)]
    pub counts: Counts,
    /// Signals raised: rule id and number of people.
    pub signals: Vec<(String, u64)>,
    /// Breakdowns by dimension: `nationality`, `age_band`, `refusal`, `current_country`.
    pub breakdowns: Vec<(String, Vec<Group>)>,
}

/// A whole simulation.
#[derive(Clone, Debug, Serialize)]
pub struct Simulation {
    /// People.
    pub rows: usize,
    /// The evaluation date.
    pub on: String,
    /// Per programme, then per reform.
    pub programmes: Vec<ProgrammeResult>,
    /// Seconds spent evaluating rules (compiling included).
    pub evaluation_seconds: f64,
    /// Seconds spent counting and breaking down.
    pub counting_seconds: f64,
}

/// Age bands of the breakdowns.
pub const AGE_BANDS: [(&str, u32, u32); 6] = [
    ("under 18", 0, 17),
    ("18-27", 18, 27),
    ("28-35", 28, 35),
    ("36-45", 36, 45),
    ("46-60", 46, 60),
    ("over 60", 61, 200),
];

struct Dimension {
    name: &'static str,
    groups: Vec<(String, Vec<u64>)>,
}

/// One bitmap per distinct key, keys being small numbers below `limit`; groups in key order.
fn bitmaps(
    rows: usize,
    limit: usize,
    key: impl Fn(usize) -> usize,
    name: impl Fn(usize) -> String,
) -> Vec<(String, Vec<u64>)> {
    let words = rows.div_ceil(64);
    let mut slot: Vec<Option<usize>> = vec![None; limit + 1];
    let mut maps: Vec<Vec<u64>> = Vec::new();
    for i in 0..rows {
        let k = key(i).min(limit);
        let s = match slot[k] {
            Some(s) => s,
            None => {
                maps.push(vec![0u64; words]);
                slot[k] = Some(maps.len() - 1);
                maps.len() - 1
            }
        };
        maps[s][i / 64] |= 1 << (i % 64);
    }
    let mut maps: Vec<Option<Vec<u64>>> = maps.into_iter().map(Some).collect();
    slot.iter()
        .enumerate()
        .filter_map(|(k, s)| Some((name(k), maps.get_mut((*s)?)?.take()?)))
        .collect()
}

fn dimensions(c: &dyn Columns, on: Date) -> Vec<Dimension> {
    let rows = c.rows();
    // Country indexes are below 256; anything else is unknown.
    let country = |fact: Fact| {
        let col = c.countries(fact);
        bitmaps(
            rows,
            256,
            |i| col.get(i).map_or(256, |v| usize::from(*v)),
            |k| {
                u16::try_from(k)
                    .ok()
                    .and_then(Country::from_index)
                    .map_or_else(|| "unknown".into(), |x| x.as_str().to_owned())
            },
        )
    };
    // Age bands as birth-day ranges: band b holds birth days in (earliest[b], latest[b]].
    let today = crate::columnar::day_number(on);
    let bands: Vec<(i32, i32)> = AGE_BANDS
        .iter()
        .map(|(_, lo, hi)| {
            (
                crate::columnar::latest_birth_day(on, i64::from(*hi) + 1),
                crate::columnar::latest_birth_day(on, i64::from(*lo)),
            )
        })
        .collect();
    let births = c.dates(Fact::BirthDate);
    let refusals = c.enums(Fact::Refusal);
    let refusal_names = match Fact::Refusal.fact_type() {
        refuge_core::facts::FactType::Enum { values } => values,
        _ => &[],
    };
    vec![
        Dimension {
            name: "nationality",
            groups: country(Fact::Nationality),
        },
        Dimension {
            name: "age_band",
            groups: bitmaps(
                rows,
                AGE_BANDS.len(),
                |i| match births.get(i) {
                    Some(&d) if d != i32::MIN && d <= today => bands
                        .iter()
                        .position(|(earliest, latest)| d > *earliest && d <= *latest)
                        .unwrap_or(AGE_BANDS.len()),
                    _ => AGE_BANDS.len(),
                },
                |k| AGE_BANDS.get(k).map_or("unknown", |b| b.0).to_owned(),
            ),
        },
        Dimension {
            name: "refusal",
            groups: bitmaps(
                rows,
                256,
                |i| refusals.get(i).map_or(256, |v| usize::from(*v)),
                |k| {
                    refusal_names
                        .get(k)
                        .copied()
                        .unwrap_or("unknown")
                        .to_owned()
                },
            ),
        },
        Dimension {
            name: "current_country",
            groups: country(Fact::CurrentCountry),
        },
    ]
}

fn eligible_words(o: &Outcomes) -> Vec<u64> {
    let words = o.rows.div_ceil(64);
    (0..words)
        .map(|w| {
            let n = (o.rows - w * 64).min(64);
            let all = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
            all & !o.ineligible[w] & !o.undetermined[w]
        })
        .collect()
}

fn pop_and(a: &[u64], b: &[u64]) -> u64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| u64::from((x & y).count_ones()))
        .sum()
}

fn pop_and_not(a: &[u64], b: &[u64], mask: &[u64]) -> u64 {
    a.iter()
        .zip(b)
        .zip(mask)
        .map(|((x, y), m)| u64::from((x & !y & m).count_ones()))
        .sum()
}

fn counts(o: &Outcomes, elig: &[u64], base: Option<&[u64]>, mask: &[u64]) -> Counts {
    let e = pop_and(elig, mask);
    let i = pop_and(&o.ineligible, mask);
    let u = pop_and(&o.undetermined, mask);
    Counts {
        eligible: e,
        ineligible: i,
        undetermined: u,
        newly_eligible: base.map(|b| pop_and_not(elig, b, mask)),
        newly_ineligible: base.map(|b| pop_and_not(b, elig, mask)),
    }
}

/// Simulate `programmes` and, for each reform, its programme with the reform applied,
/// compared with that programme, over caseload `c` on `on`.
pub fn simulate(
    programmes: &[Programme],
    reforms: &[Reform],
    c: &dyn Columns,
    on: Date,
    threads: usize,
) -> Result<Simulation, Unsupported> {
    let t0 = Instant::now();
    let mut prepared: Vec<(Programme, Option<usize>)> =
        programmes.iter().map(|p| (p.clone(), None)).collect();
    for r in reforms {
        let Some(base_index) = prepared
            .iter()
            .position(|(p, b)| b.is_none() && p.id == r.reform_of)
        else {
            return Err(Unsupported(format!(
                "reform {} changes {}, which is not among the programmes simulated",
                r.id, r.reform_of
            )));
        };
        let reformed = prepared[base_index].0.with_reform(r).map_err(Unsupported)?;
        prepared.push((reformed, Some(base_index)));
    }
    let compiled = prepared
        .iter()
        .map(|(p, _)| compile_programme(p, on))
        .collect::<Result<Vec<_>, _>>()?;
    let evaluated: Vec<(Programme, Outcomes, Option<usize>)> = prepared
        .into_iter()
        .zip(evaluate_all(&compiled, c, threads))
        .map(|((p, base), o)| (p, o, base))
        .collect();
    let evaluation_seconds = t0.elapsed().as_secs_f64();

    let t1 = Instant::now();
    let rows = c.rows();
    let all: Vec<u64> = (0..rows.div_ceil(64))
        .map(|w| {
            let n = (rows - w * 64).min(64);
            if n == 64 { u64::MAX } else { (1u64 << n) - 1 }
        })
        .collect();
    let dims = dimensions(c, on);
    let eligibles: Vec<Vec<u64>> = evaluated
        .iter()
        .map(|(_, o, _)| eligible_words(o))
        .collect();
    let mut results = Vec::new();
    for (i, (p, o, base)) in evaluated.iter().enumerate() {
        let base_elig = base.map(|b| eligibles[b].as_slice());
        let signals = p
            .rules
            .iter()
            .filter(|r| r.kind == RuleKind::Signal)
            .map(|r| r.id.clone())
            .zip(o.signals.iter().copied())
            .collect();
        let breakdowns = dims
            .iter()
            .map(|d| {
                let groups = d
                    .groups
                    .iter()
                    .map(|(key, mask)| Group {
                        key: key.clone(),
                        counts: counts(o, &eligibles[i], base_elig, mask),
                    })
                    .collect();
                (d.name.to_owned(), groups)
            })
            .collect();
        results.push(ProgrammeResult {
            id: std::iter::once(p.id.clone())
                .chain(p.reforms.iter().cloned())
                .collect::<Vec<_>>()
                .join("+"),
            baseline: base.map(|b| evaluated[b].0.id.clone()),
            counts: counts(o, &eligibles[i], base_elig, &all),
            signals,
            breakdowns,
        });
    }
    Ok(Simulation {
        rows,
        on: on.to_string(),
        programmes: results,
        evaluation_seconds,
        counting_seconds: t1.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columnar::FactColumns;
    use crate::programme::{LANGUAGES, Loaded, Sets, parse_file};
    use refuge_core::facts::Facts;
    use std::path::Path;
    use time::macros::date;

    fn load(src: &str) -> Loaded {
        let sets = Sets::default();
        match parse_file(Path::new("x.toml"), src, &sets) {
            Ok(l) => l,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn a_reform_shows_who_gains() {
        let t = LANGUAGES
            .iter()
            .map(|l| format!("{l} = \"x\""))
            .collect::<Vec<_>>()
            .join(", ");
        let Loaded::Programme(p) = load(&format!(
            "id = \"m\"\nmodel = \"m\"\nas_of = \"2023-01-01\"\nstate = \"NL\"\nauthority = \"a\"\nsources = [\"s\"]\ntitle = {{ {t} }}\nsummary = {{ {t} }}\n\
             [parameters.max_age]\ntype = \"int\"\nvalues = [{{ from = \"2020-01-01\", value = 27, reference = \"r\" }}]\n\
             [[rules]]\nid = \"age\"\nkind = \"require\"\nwhen = 'age >= 18 and age <= param.max_age'\nbasis = \"b\"\nexplain = {{ {t} }}\n"
        )) else {
            panic!()
        };
        let Loaded::Reform(r) = load(&format!(
            "id = \"m35\"\nreform_of = \"m\"\nmodel = \"m\"\nsources = [\"s\"]\ntitle = {{ {t} }}\nsummary = {{ {t} }}\n\
             [parameters.max_age]\ntype = \"int\"\nvalues = [{{ from = \"2020-01-01\", value = 35, reference = \"r\" }}]\n"
        )) else {
            panic!()
        };
        let people: Vec<Facts> = ["2000-01-01", "1997-06-10", "1980-01-01"]
            .iter()
            .map(|b| {
                serde_json::from_value(serde_json::json!({"birth_date": b, "nationality": "RU"}))
                    .unwrap()
            })
            .chain(std::iter::once(Facts::default()))
            .collect();
        let sim = simulate(
            &[p],
            &[r],
            &FactColumns::new(&people),
            date!(2026 - 11 - 22),
            2,
        )
        .unwrap();
        assert_eq!(sim.programmes.len(), 2);
        let base = &sim.programmes[0].counts;
        assert_eq!(
            (base.eligible, base.ineligible, base.undetermined),
            (1, 2, 1)
        );
        let reform = &sim.programmes[1];
        assert_eq!(reform.id, "m+m35");
        assert_eq!(
            (
                reform.counts.eligible,
                reform.counts.newly_eligible,
                reform.counts.newly_ineligible
            ),
            (2, Some(1), Some(0))
        );
        let bands = &reform
            .breakdowns
            .iter()
            .find(|(d, _)| d == "age_band")
            .unwrap()
            .1;
        let band = bands.iter().find(|g| g.key == "28-35").unwrap();
        assert_eq!(band.counts.newly_eligible, Some(1));
        let nat = &reform
            .breakdowns
            .iter()
            .find(|(d, _)| d == "nationality")
            .unwrap()
            .1;
        assert_eq!(
            nat.iter().map(|g| g.key.as_str()).collect::<Vec<_>>(),
            vec!["RU", "unknown"]
        );
    }
}
