//! Columnar evaluation: programmes compiled, once per evaluation date, to kernels over column
//! arrays that produce three-valued results for 64 people at a time as two bitmasks (`t`: true,
//! `k`: known). Age bounds become birth-date bounds, `days_until` bounds become date bounds,
//! parameters become constants; no expression tree is interpreted per person. Rows are split
//! between threads.

use crate::expr::{Checked, CmpOp, Value};
use crate::programme::{IfUnknown, Programme, RuleKind};
use refuge_core::facts::{Fact, Facts, age_on};
use std::collections::BTreeMap;
use time::Date;

/// Read access to a caseload's columns. Unknown is a sentinel in every column.
pub trait Columns: Sync {
    /// Number of people.
    fn rows(&self) -> usize;
    /// An enumerated fact: the value's index, `u8::MAX` when unknown.
    fn enums(&self, fact: Fact) -> &[u8];
    /// A bool fact: 0 or 1, 2 when unknown.
    fn bools(&self, fact: Fact) -> &[u8];
    /// A date fact: days since 1970-01-01, `i32::MIN` when unknown.
    fn dates(&self, fact: Fact) -> &[i32];
    /// A country fact: `Country::index()`, `u16::MAX` when unknown.
    fn countries(&self, fact: Fact) -> &[u16];
    /// An enum-set fact: bitmask by index, bit 31 set when unknown.
    fn sets(&self, fact: Fact) -> &[u32];
    /// The `languages` fact as three word columns: bit `l % 64` of column `l / 64` is
    /// language index `l`; bit 63 of the last column set means unknown.
    fn languages(&self) -> [&[u64]; 3];
}

/// Days since 1970-01-01.
pub fn day_number(d: Date) -> i32 {
    d.to_julian_day() - 2_440_588
}

/// The latest birth day (as [`day_number`]) of someone who is at least `years` old on `on`
/// (29 February birthdays count as 1 March in common years, as `age_on` does).
pub fn latest_birth_day(on: Date, years: i64) -> i32 {
    let params = BTreeMap::new();
    Ctx {
        on,
        params: &params,
    }
    .age_cutoff(years)
}

/// A kernel: a compiled condition.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum K {
    Const(Option<bool>),
    Enum {
        fact: Fact,
        table: Box<[bool; 256]>,
    },
    /// An enum equal to one of at most eight values (or, with `negate`, to none of them: a
    /// set given by its complement), compared directly, which vectorises. Unused slots
    /// repeat a value; 254 is no value.
    EnumFew {
        fact: Fact,
        values: [u8; 8],
        negate: bool,
    },
    Bool {
        fact: Fact,
        want: bool,
    },
    /// true when lo <= d <= hi; known when d is known and d <= known_max.
    Date {
        fact: Fact,
        lo: i32,
        hi: i32,
        known_max: i32,
    },
    /// A country in a set: the members' `Country::index()`, sorted (as compiled; the plan
    /// specialises it to one of the two forms below).
    CountryIn {
        fact: Fact,
        members: Vec<u16>,
    },
    /// A country equal to one of at most four values (compared directly, which vectorises;
    /// unused slots repeat a member).
    CountryFew {
        fact: Fact,
        values: [u16; 4],
    },
    /// A country in a larger set, by a table over `Country::index()` (below 250).
    CountryTable {
        fact: Fact,
        table: Box<[bool; 256]>,
    },
    /// `(country in C1 and "l1" in languages) or (country in C2 and "l2" in languages) …`
    /// as one lookup per row: the languages that count for each country, as three words
    /// like the `languages` columns; entry 255 (an unknown country) is all of them.
    CountryLang {
        fact: Fact,
        table: Box<[[u64; 3]; 256]>,
    },
    SetAny {
        fact: Fact,
        mask: u32,
    },
    /// A language by its word column and bit.
    Lang {
        word: usize,
        bit: u32,
    },
    Known(Fact),
    Not(Box<K>),
    And(Vec<K>),
    Or(Vec<K>),
}

/// An expression the kernels cannot express, such as a comparison of two facts: `refuge
/// simulate` reports it as an error naming the rule (`refuge check` can still decide it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot compile to a column kernel: {0}")]
pub struct Unsupported(pub String);

struct Ctx<'a> {
    on: Date,
    params: &'a BTreeMap<String, Value>,
}

impl Ctx<'_> {
    /// A constant, if the expression is one (parameters and sums of constants included).
    fn constant(&self, e: &Checked) -> Option<Value> {
        match e {
            Checked::Const(v) => Some(*v),
            Checked::Param(p) => self.params.get(p).copied(),
            Checked::Today => Some(Value::Date(self.on)),
            Checked::Add(a, b, minus) => match (self.constant(a)?, self.constant(b)?) {
                (Value::Int(a), Value::Int(b)) => {
                    Some(Value::Int(if *minus { a - b } else { a + b }))
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// The latest birth date at which someone is at least `years` old on the evaluation date.
    fn age_cutoff(&self, years: i64) -> i32 {
        let on = day_number(self.on);
        let span = i32::try_from(years.clamp(0, 200)).unwrap_or(200);
        let (mut lo, mut hi) = (on - (span + 2) * 366, on);
        // invariant: age(lo) >= years (or lo is far enough back), age(hi+1) < years
        if self.age(hi) >= years {
            return hi;
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.age(mid) >= years {
                lo = mid
            } else {
                hi = mid
            }
        }
        lo
    }

    fn age(&self, birth_day: i32) -> i64 {
        Date::from_julian_day(birth_day + 2_440_588)
            .ok()
            .and_then(|b| age_on(b, self.on))
            .map_or(-1, i64::from)
    }
}

fn flip(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Le => CmpOp::Ge,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Ge => CmpOp::Le,
        other => other,
    }
}

/// Inclusive bounds [lo, hi] for `x op c` over integers.
fn bounds(op: CmpOp, c: i64) -> Option<(i64, i64)> {
    Some(match op {
        CmpOp::Eq => (c, c),
        CmpOp::Lt => (i64::MIN, c - 1),
        CmpOp::Le => (i64::MIN, c),
        CmpOp::Gt => (c + 1, i64::MAX),
        CmpOp::Ge => (c, i64::MAX),
        CmpOp::Ne => return None,
    })
}

fn clamp32(x: i64) -> i32 {
    i32::try_from(x.clamp(i64::from(i32::MIN) + 1, i64::from(i32::MAX))).unwrap_or(i32::MAX)
}

/// Replace table kernels by forms that vectorise where the values allow.
fn specialise(k: K) -> K {
    match k {
        K::Enum { fact, table } => {
            let n = fact.fact_type().values().len().min(254);
            let pick = |want: bool| -> Vec<u8> {
                (0..n)
                    .filter(|i| table[*i] == want)
                    .filter_map(|i| u8::try_from(i).ok())
                    .collect()
            };
            let (members, others) = (pick(true), pick(false));
            let (chosen, negate) = if members.len() <= others.len() {
                (members, false)
            } else {
                (others, true)
            };
            if chosen.len() > 8 {
                return K::Enum { fact, table };
            }
            let mut values = [chosen.first().copied().unwrap_or(254); 8];
            for (slot, v) in values.iter_mut().zip(&chosen) {
                *slot = *v;
            }
            K::EnumFew {
                fact,
                values,
                negate,
            }
        }
        K::CountryIn { fact, members } => match members.as_slice() {
            [a, rest @ ..] if rest.len() <= 3 => {
                let mut values = [*a; 4];
                for (slot, v) in values.iter_mut().skip(1).zip(rest) {
                    *slot = *v;
                }
                K::CountryFew { fact, values }
            }
            _ => {
                let mut table = Box::new([false; 256]);
                for m in &members {
                    if let Some(slot) = table.get_mut(usize::from(*m)) {
                        *slot = true;
                    }
                }
                table[255] = false;
                K::CountryTable { fact, table }
            }
        },
        K::Not(x) => K::Not(Box::new(specialise(*x))),
        K::And(v) => K::And(v.into_iter().map(specialise).collect()),
        K::Or(v) => K::Or(
            fuse_country_languages(v)
                .into_iter()
                .map(specialise)
                .collect(),
        ),
        other => other,
    }
}

/// In an `or`, fuse the operands of the form `country in C and "l" in languages` (on the same
/// country fact, at least two of them) into one [`K::CountryLang`] lookup.
fn fuse_country_languages(children: Vec<K>) -> Vec<K> {
    fn pair(k: &K) -> Option<(Fact, &[u16], usize, u32)> {
        let K::And(v) = k else { return None };
        match v.as_slice() {
            [K::CountryIn { fact, members }, K::Lang { word, bit }]
            | [K::Lang { word, bit }, K::CountryIn { fact, members }] => {
                Some((*fact, members.as_slice(), *word, *bit))
            }
            _ => None,
        }
    }
    let mut facts: Vec<Fact> = children
        .iter()
        .filter_map(|k| pair(k).map(|p| p.0))
        .collect();
    facts.sort();
    facts.dedup();
    let mut children = children;
    for f in facts {
        if children
            .iter()
            .filter(|k| pair(k).is_some_and(|p| p.0 == f))
            .count()
            < 2
        {
            continue;
        }
        let mut table = Box::new([[0u64; 3]; 256]);
        let mut rest = Vec::new();
        for k in children {
            match pair(&k) {
                Some((fact, members, word, bit)) if fact == f && word < 3 => {
                    for m in members.iter().map(|m| usize::from(*m)).chain([255]) {
                        if let Some(entry) = table.get_mut(m) {
                            entry[word] |= 1 << bit;
                        }
                    }
                }
                _ => rest.push(k),
            }
        }
        rest.push(K::CountryLang { fact: f, table });
        children = rest;
    }
    children
}

fn compile(e: &Checked, cx: &Ctx<'_>) -> Result<K, Unsupported> {
    if let Some(Value::Bool(b)) = cx.constant(e) {
        return Ok(K::Const(Some(b)));
    }
    match e {
        Checked::Not(x) => Ok(K::Not(Box::new(compile(x, cx)?))),
        Checked::And(v) => Ok(K::And(
            v.iter().map(|x| compile(x, cx)).collect::<Result<_, _>>()?,
        )),
        Checked::Or(v) => Ok(K::Or(
            v.iter().map(|x| compile(x, cx)).collect::<Result<_, _>>()?,
        )),
        Checked::Fact(f) => Ok(K::Bool {
            fact: *f,
            want: true,
        }),
        Checked::Known(f) => Ok(K::Known(*f)),
        Checked::Member(Value::Enum(i), f) => Ok(K::SetAny {
            fact: *f,
            mask: 1 << i,
        }),
        Checked::Intersects(f, mask) => Ok(K::SetAny {
            fact: *f,
            mask: *mask,
        }),
        Checked::SpeaksLanguage(l) => {
            let i = usize::from(l.index());
            Ok(K::Lang {
                word: i / 64,
                bit: u32::try_from(i % 64).unwrap_or(0),
            })
        }
        Checked::InValues(x, values) => match x.as_ref() {
            Checked::Fact(f) => match values.iter().next() {
                Some(Value::Enum(_)) | None
                    if matches!(crate::expr::fact_type(*f), crate::expr::Type::Enum(_)) =>
                {
                    let mut table = Box::new([false; 256]);
                    for v in values {
                        if let Value::Enum(i) = v {
                            table[usize::from(*i)] = true;
                        }
                    }
                    Ok(K::Enum { fact: *f, table })
                }
                Some(Value::Country(_)) | None => {
                    let mut members: Vec<u16> = values
                        .iter()
                        .filter_map(|v| match v {
                            Value::Country(c) => Some(c.index()),
                            _ => None,
                        })
                        .collect();
                    members.sort_unstable();
                    members.dedup();
                    Ok(K::CountryIn { fact: *f, members })
                }
                _ => Err(Unsupported(format!("{} in a list", f.name()))),
            },
            other => {
                let ors = values
                    .iter()
                    .map(|v| {
                        compile(
                            &Checked::Cmp(
                                CmpOp::Eq,
                                Box::new(other.clone()),
                                Box::new(Checked::Const(*v)),
                            ),
                            cx,
                        )
                    })
                    .collect::<Result<_, _>>()?;
                Ok(K::Or(ors))
            }
        },
        Checked::Cmp(op, a, b) => {
            let (op, var, c) = match (cx.constant(a), cx.constant(b)) {
                (None, Some(c)) => (*op, a.as_ref(), c),
                (Some(c), None) => (flip(*op), b.as_ref(), c),
                (Some(x), Some(y)) => {
                    let r = match *op {
                        CmpOp::Eq => x == y,
                        CmpOp::Ne => x != y,
                        CmpOp::Lt => x < y,
                        CmpOp::Le => x <= y,
                        CmpOp::Gt => x > y,
                        CmpOp::Ge => x >= y,
                    };
                    return Ok(K::Const(Some(r)));
                }
                (None, None) => return Err(Unsupported("a comparison of two facts".into())),
            };
            if op == CmpOp::Ne {
                return Ok(K::Not(Box::new(compile(
                    &Checked::Cmp(
                        CmpOp::Eq,
                        Box::new(var.clone()),
                        Box::new(Checked::Const(c)),
                    ),
                    cx,
                )?)));
            }
            cmp_kernel(op, var, c, cx)
        }
        other => Err(Unsupported(format!("{other:?}"))),
    }
}

fn cmp_kernel(op: CmpOp, var: &Checked, c: Value, cx: &Ctx<'_>) -> Result<K, Unsupported> {
    let on = day_number(cx.on);
    match (var, c) {
        (Checked::Fact(f), Value::Enum(i)) if op == CmpOp::Eq => {
            let mut table = Box::new([false; 256]);
            table[usize::from(i)] = true;
            Ok(K::Enum { fact: *f, table })
        }
        (Checked::Fact(f), Value::Country(country)) if op == CmpOp::Eq => Ok(K::CountryIn {
            fact: *f,
            members: vec![country.index()],
        }),
        (Checked::Fact(f), Value::Bool(b)) if op == CmpOp::Eq => Ok(K::Bool { fact: *f, want: b }),
        (Checked::Fact(f), Value::Date(d)) => {
            let (lo, hi) =
                bounds(op, i64::from(day_number(d))).ok_or_else(|| Unsupported("!=".into()))?;
            Ok(K::Date {
                fact: *f,
                lo: clamp32(lo),
                hi: clamp32(hi),
                known_max: i32::MAX,
            })
        }
        (Checked::Age, Value::Int(n)) => {
            // age in [a, b]  <=>  birth in (cutoff(b + 1), cutoff(a)]
            let (a, b) = bounds(op, n).ok_or_else(|| Unsupported("!=".into()))?;
            let hi = if a <= 0 { on } else { cx.age_cutoff(a) };
            let lo = if b >= 200 {
                i32::MIN + 1
            } else {
                cx.age_cutoff(b.saturating_add(1)) + 1
            };
            Ok(K::Date {
                fact: Fact::BirthDate,
                lo,
                hi,
                known_max: on,
            })
        }
        (Checked::DaysUntil(x), Value::Int(n)) => match x.as_ref() {
            Checked::Fact(f) => {
                let (lo, hi) = bounds(op, n).ok_or_else(|| Unsupported("!=".into()))?;
                Ok(K::Date {
                    fact: *f,
                    lo: clamp32(lo.saturating_add(i64::from(on))),
                    hi: clamp32(hi.saturating_add(i64::from(on))),
                    known_max: i32::MAX,
                })
            }
            _ => Err(Unsupported("days_until of a computed date".into())),
        },
        (Checked::DaysSince(x), Value::Int(n)) => match x.as_ref() {
            Checked::Fact(f) => {
                // on - d in [a, b]  <=>  d in [on - b, on - a]
                let (a, b) = bounds(op, n).ok_or_else(|| Unsupported("!=".into()))?;
                Ok(K::Date {
                    fact: *f,
                    lo: clamp32(i64::from(on).saturating_sub(b)),
                    hi: clamp32(i64::from(on).saturating_sub(a)),
                    known_max: i32::MAX,
                })
            }
            _ => Err(Unsupported("days_since of a computed date".into())),
        },
        (var, c) => Err(Unsupported(format!("{var:?} compared with {c:?}"))),
    }
}

/// Three-valued results for 64 rows: bit j of `t` is "true", of `k` "known" (`t` ⊆ `k`).
///
/// Evaluation is lazy: every kernel is asked for the rows in a `need` mask only, and bits of
/// rows outside that mask are left unspecified. `and` asks its next operand only for the rows
/// not yet known false, `or` for those not yet known true, and a programme asks each
/// eligibility rule only for the people no earlier rule has already made ineligible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Word {
    t: u64,
    k: u64,
}

const ZERO: Word = Word { t: 0, k: 0 };

/// Words evaluated together: 64 words = 4,096 people per block.
const BLOCK: usize = 64;

/// A word that needs at most this many of its rows is evaluated row by row; above it, all 64
/// rows are computed in a loop the compiler vectorises.
const SPARSE: u32 = 12;

/// Pack 64 bytes of 0/1 into 64 bits (byte i to bit i): eight bytes at a time, the multiply
/// moves byte j's low bit to bit 56 + j without carries, then the top byte is taken.
#[inline]
fn pack(bytes: &[u8; 64]) -> u64 {
    let mut out = 0u64;
    for (i, chunk) in bytes.chunks_exact(8).enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        let x = u64::from_le_bytes(b);
        out |= (x.wrapping_mul(0x0102_0408_1020_4080) >> 56) << (i * 8);
    }
    out
}

/// Evaluate a leaf for the needed rows of the block's words: `$v` is each value, giving
/// (known, true). Dense full words compute 64 result bytes in a uniform loop (which
/// vectorises) and pack them; sparse words visit only their needed rows.
macro_rules! leaf {
    ($out:expr, $need:expr, $col:expr, $first:expr, $rows:expr, |$v:ident| ($known:expr, $truth:expr)) => {{
        let col = $col;
        for (w, (slot, &m)) in $out.iter_mut().zip($need.iter()).enumerate() {
            if m == 0 {
                continue;
            }
            let base = ($first + w) * 64;
            let n = ($rows - base).min(64);
            if n == 64 && m.count_ones() > SPARSE {
                let mut kb = [0u8; 64];
                let mut tb = [0u8; 64];
                for ((&$v, kx), tx) in col[base..base + 64]
                    .iter()
                    .zip(kb.iter_mut())
                    .zip(tb.iter_mut())
                {
                    let known: bool = $known;
                    let truth: bool = $truth;
                    *kx = u8::from(known);
                    *tx = u8::from(known & truth);
                }
                *slot = Word {
                    t: pack(&tb),
                    k: pack(&kb),
                };
            } else {
                let (mut t, mut k) = (0u64, 0u64);
                let mut bits = m;
                while bits != 0 {
                    let j = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    let $v = col[base + j];
                    let known: bool = $known;
                    let truth: bool = $truth;
                    k |= u64::from(known) << j;
                    t |= u64::from(known & truth) << j;
                }
                *slot = Word { t, k };
            }
        }
    }};
}

fn all_of(rows: usize, word: usize) -> u64 {
    let n = (rows - word * 64).min(64);
    if n == 64 { u64::MAX } else { (1u64 << n) - 1 }
}

/// Evaluate leaf kernel `kernel` for the rows in `need` of words `first .. first + out.len()`.
fn eval_leaf(kernel: &K, c: &dyn Columns, first: usize, need: &[u64], out: &mut [Word]) {
    let rows = c.rows();
    match kernel {
        K::Const(_) | K::Not(_) | K::And(_) | K::Or(_) => {
            // Not leaves: the plan never hands them here.
            for slot in out.iter_mut() {
                *slot = ZERO;
            }
        }
        K::Enum { fact, table } => leaf!(out, need, c.enums(*fact), first, rows, |v| (
            v != u8::MAX,
            table[usize::from(v)]
        )),
        K::EnumFew {
            fact,
            values,
            negate,
        } => {
            let [a, b, cc, d, e, f, g, h] = *values;
            let negate = *negate;
            leaf!(out, need, c.enums(*fact), first, rows, |v| (
                v != u8::MAX,
                ((v == a)
                    | (v == b)
                    | (v == cc)
                    | (v == d)
                    | (v == e)
                    | (v == f)
                    | (v == g)
                    | (v == h))
                    != negate
            ))
        }
        K::CountryIn { fact, members } => {
            // Unspecialised (the plan specialises every kernel): a search per row.
            leaf!(out, need, c.countries(*fact), first, rows, |v| (
                v != u16::MAX,
                members.binary_search(&v).is_ok()
            ))
        }
        K::CountryFew { fact, values } => {
            let [a, b, cc, d] = *values;
            leaf!(out, need, c.countries(*fact), first, rows, |v| (
                v != u16::MAX,
                (v == a) | (v == b) | (v == cc) | (v == d)
            ))
        }
        K::CountryTable { fact, table } => {
            leaf!(out, need, c.countries(*fact), first, rows, |v| (
                v != u16::MAX,
                table[usize::from(v & 255)]
            ))
        }
        K::CountryLang { fact, table } => {
            let cols = c.languages();
            let col = c.countries(*fact);
            let (l0, l1, l2) = (cols[0], cols[1], cols[2]);
            for (w, (slot, &m)) in out.iter_mut().zip(need.iter()).enumerate() {
                if m == 0 {
                    continue;
                }
                let base = (first + w) * 64;
                let (mut t, mut k) = (0u64, 0u64);
                let mut bits = m;
                while bits != 0 {
                    let j = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    let v = col[base + j];
                    let (x0, x1, x2) = (l0[base + j], l1[base + j], l2[base + j]);
                    let [m0, m1, m2] = table[usize::from(v & 255)];
                    let hit = (x0 & m0) | (x1 & m1) | (x2 & m2) != 0;
                    let country_unknown = v == u16::MAX;
                    let languages_unknown = x2 >> 63 == 1;
                    let known = if country_unknown {
                        !languages_unknown & !hit
                    } else {
                        !languages_unknown | (m0 | m1 | m2 == 0)
                    };
                    let truth = !country_unknown & !languages_unknown & hit;
                    k |= u64::from(known) << j;
                    t |= u64::from(known & truth) << j;
                }
                *slot = Word { t, k };
            }
        }
        K::Bool { fact, want } => leaf!(out, need, c.bools(*fact), first, rows, |v| (
            v < 2,
            (v == 1) == *want
        )),
        K::Date {
            fact,
            lo,
            hi,
            known_max,
        } => {
            let (lo, hi, km) = (*lo, *hi, *known_max);
            leaf!(out, need, c.dates(*fact), first, rows, |v| (
                (v != i32::MIN) & (v <= km),
                (v >= lo) & (v <= hi)
            ))
        }
        K::SetAny { fact, mask } => {
            let mask = *mask;
            leaf!(out, need, c.sets(*fact), first, rows, |v| (
                v & (1 << 31) == 0,
                v & mask != 0
            ))
        }
        K::Known(f) => match crate::expr::fact_type(*f) {
            crate::expr::Type::Enum(_) => {
                leaf!(out, need, c.enums(*f), first, rows, |v| (
                    true,
                    v != u8::MAX
                ))
            }
            crate::expr::Type::Bool => {
                leaf!(out, need, c.bools(*f), first, rows, |v| (true, v < 2))
            }
            crate::expr::Type::Date => {
                leaf!(out, need, c.dates(*f), first, rows, |v| (
                    true,
                    v != i32::MIN
                ))
            }
            crate::expr::Type::Country => {
                leaf!(out, need, c.countries(*f), first, rows, |v| (
                    true,
                    v != u16::MAX
                ))
            }
            crate::expr::Type::EnumSet(_) => {
                leaf!(out, need, c.sets(*f), first, rows, |v| (
                    true,
                    v & (1 << 31) == 0
                ))
            }
            _ => leaf!(out, need, c.languages()[2], first, rows, |v| (
                true,
                v & (1 << 63) == 0
            )),
        },
        K::Lang { word, bit } => {
            let cols = c.languages();
            let (words, flags, bit) = (cols[*word], cols[2], *bit);
            // The language's bit and the unknown flag, from two columns of the same rows:
            // the truth from one pass, the knownness from another, then combined.
            let mut known = [ZERO; BLOCK];
            let known = &mut known[..out.len()];
            leaf!(known, need, flags, first, rows, |v| (
                true,
                v & (1 << 63) == 0
            ));
            leaf!(out, need, words, first, rows, |v| (true, v >> bit & 1 == 1));
            for (slot, kn) in out.iter_mut().zip(known.iter()) {
                *slot = Word {
                    t: slot.t & kn.t,
                    k: kn.t,
                };
            }
        }
    }
}

/// A condition in a [`Plan`]: leaves are shared between every rule of every programme.
#[derive(Clone, Debug)]
enum Node {
    Const(Option<bool>),
    Leaf(usize),
    Not(Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
}

/// One rule in a plan.
#[derive(Clone, Debug)]
struct PlannedRule {
    kind: RuleKind,
    if_unknown: IfUnknown,
    node: Node,
}

/// Programmes prepared for evaluation together: identical leaf kernels (the same fact and
/// the same values) are evaluated once per block and reused by every rule that has them.
struct Plan {
    leaves: Vec<K>,
    /// Per leaf: its slot in the per-block cache, when more than one place uses it.
    slot: Vec<Option<usize>>,
    slots: usize,
    programmes: Vec<Vec<PlannedRule>>,
    signals: Vec<usize>,
}

impl Plan {
    fn new(ps: &[Compiled]) -> Plan {
        fn intern(
            k: &K,
            ids: &mut std::collections::HashMap<K, usize>,
            leaves: &mut Vec<K>,
            uses: &mut Vec<usize>,
        ) -> Node {
            match k {
                K::Const(v) => Node::Const(*v),
                K::Not(x) => Node::Not(Box::new(intern(x, ids, leaves, uses))),
                K::And(v) => Node::And(v.iter().map(|x| intern(x, ids, leaves, uses)).collect()),
                K::Or(v) => Node::Or(v.iter().map(|x| intern(x, ids, leaves, uses)).collect()),
                leaf => {
                    let i = *ids.entry(leaf.clone()).or_insert_with(|| {
                        leaves.push(leaf.clone());
                        uses.push(0);
                        leaves.len() - 1
                    });
                    if let Some(u) = uses.get_mut(i) {
                        *u += 1;
                    }
                    Node::Leaf(i)
                }
            }
        }
        let mut ids = std::collections::HashMap::new();
        let (mut leaves, mut uses) = (Vec::new(), Vec::new());
        let programmes: Vec<Vec<PlannedRule>> = ps
            .iter()
            .map(|p| {
                p.rules
                    .iter()
                    .map(|r| PlannedRule {
                        kind: r.kind,
                        if_unknown: r.if_unknown,
                        node: intern(&r.kernel, &mut ids, &mut leaves, &mut uses),
                    })
                    .collect()
            })
            .collect();
        let mut slots = 0;
        let slot = uses
            .iter()
            .map(|u| {
                (*u > 1).then(|| {
                    slots += 1;
                    slots - 1
                })
            })
            .collect();
        let signals = programmes
            .iter()
            .map(|rules| rules.iter().filter(|r| r.kind == RuleKind::Signal).count())
            .collect();
        Plan {
            leaves,
            slot,
            slots,
            programmes,
            signals,
        }
    }
}

/// Per-thread memory for the current block: the shared leaves' words and which rows of each
/// word have been computed so far.
struct Cache {
    block: usize,
    words: Vec<[Word; BLOCK]>,
    done: Vec<[u64; BLOCK]>,
}

impl Cache {
    fn new(slots: usize) -> Cache {
        Cache {
            block: usize::MAX,
            words: vec![[ZERO; BLOCK]; slots],
            done: vec![[0; BLOCK]; slots],
        }
    }
}

/// Evaluate `node` for the rows in `need` of words `first .. first + out.len()`.
fn eval_node(
    plan: &Plan,
    node: &Node,
    c: &dyn Columns,
    first: usize,
    need: &[u64],
    out: &mut [Word],
    cache: &mut Cache,
) {
    let nw = out.len();
    match node {
        Node::Const(v) => {
            for (w, slot) in out.iter_mut().enumerate() {
                let all = all_of(c.rows(), first + w);
                *slot = match v {
                    None => ZERO,
                    Some(b) => Word {
                        t: if *b { all } else { 0 },
                        k: all,
                    },
                };
            }
        }
        Node::Leaf(i) => {
            let Some(kernel) = plan.leaves.get(*i) else {
                return;
            };
            match plan.slot.get(*i).copied().flatten() {
                None => eval_leaf(kernel, c, first, need, out),
                Some(s) => {
                    if cache.block != first {
                        cache.block = first;
                        for d in cache.done.iter_mut() {
                            *d = [0; BLOCK];
                        }
                    }
                    let mut missing = [0u64; BLOCK];
                    let mut any = 0;
                    if let Some(done) = cache.done.get(s) {
                        for w in 0..nw {
                            missing[w] = need[w] & !done[w];
                            any |= missing[w];
                        }
                    }
                    let mut fresh = [ZERO; BLOCK];
                    if any != 0 {
                        eval_leaf(kernel, c, first, &missing[..nw], &mut fresh[..nw]);
                    }
                    let (Some(words), Some(done)) = (cache.words.get_mut(s), cache.done.get_mut(s))
                    else {
                        return;
                    };
                    for w in 0..nw {
                        let m = missing[w];
                        if m != 0 {
                            words[w] = Word {
                                t: (words[w].t & !m) | (fresh[w].t & m),
                                k: (words[w].k & !m) | (fresh[w].k & m),
                            };
                            done[w] |= m;
                        }
                    }
                    out.copy_from_slice(&words[..nw]);
                }
            }
        }
        Node::Not(x) => {
            eval_node(plan, x, c, first, need, out, cache);
            for s in out.iter_mut() {
                *s = Word {
                    t: !s.t & s.k,
                    k: s.k,
                };
            }
        }
        Node::And(v) | Node::Or(v) => {
            let and = matches!(node, Node::And(_));
            let mut children = v.iter();
            let Some(head) = children.next() else {
                return eval_node(plan, &Node::Const(Some(and)), c, first, need, out, cache);
            };
            eval_node(plan, head, c, first, need, out, cache);
            let mut tmp = [ZERO; BLOCK];
            let mut sub = [0u64; BLOCK];
            for child in children {
                // Ask the next operand only for the rows this one has not settled.
                let mut any = 0;
                for w in 0..nw {
                    let a = out[w];
                    let settled = if and { a.k & !a.t } else { a.t };
                    sub[w] = need[w] & !settled;
                    any |= sub[w];
                }
                if any == 0 {
                    break;
                }
                let tmp = &mut tmp[..nw];
                eval_node(plan, child, c, first, &sub[..nw], tmp, cache);
                for (a, b) in out.iter_mut().zip(tmp.iter()) {
                    *a = if and {
                        // false wins: known when both known or either known false
                        Word {
                            t: a.t & b.t,
                            k: (a.k & b.k) | (a.k & !a.t) | (b.k & !b.t),
                        }
                    } else {
                        // true wins
                        Word {
                            t: a.t | b.t,
                            k: (a.k & b.k) | a.t | b.t,
                        }
                    };
                }
            }
        }
    }
}

/// One rule, compiled.
#[derive(Clone, Debug)]
struct CompiledRule {
    kind: RuleKind,
    if_unknown: IfUnknown,
    kernel: K,
}

/// A programme compiled for one evaluation date.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The programme's id (with reforms).
    pub id: String,
    rules: Vec<CompiledRule>,
}

/// Compile a programme for evaluation on `on`.
pub fn compile_programme(p: &Programme, on: Date) -> Result<Compiled, Unsupported> {
    let params = p.params_at(on);
    let cx = Ctx {
        on,
        params: &params,
    };
    let rules = p
        .rules
        .iter()
        .map(|r| {
            compile(&r.expr, &cx)
                .map(|kernel| CompiledRule {
                    kind: r.kind,
                    if_unknown: r.if_unknown,
                    kernel: specialise(kernel),
                })
                .map_err(|e| Unsupported(format!("rule {}: {}", r.id, e.0)))
        })
        .collect::<Result<_, _>>()?;
    let id = std::iter::once(p.id.clone())
        .chain(p.reforms.iter().cloned())
        .collect::<Vec<_>>()
        .join("+");
    Ok(Compiled { id, rules })
}

/// Per-person outcomes of one programme: bit i of `ineligible` / `undetermined` for row i
/// (eligible is neither).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcomes {
    /// People.
    pub rows: usize,
    /// Ineligible.
    pub ineligible: Vec<u64>,
    /// Undetermined.
    pub undetermined: Vec<u64>,
    /// Signals raised, per signal rule in order: number of people.
    pub signals: Vec<u64>,
}

impl Outcomes {
    /// (eligible, ineligible, undetermined) counts.
    pub fn counts(&self) -> (u64, u64, u64) {
        let inel: u64 = self
            .ineligible
            .iter()
            .map(|w| u64::from(w.count_ones()))
            .sum();
        let und: u64 = self
            .undetermined
            .iter()
            .map(|w| u64::from(w.count_ones()))
            .sum();
        (self.rows as u64 - inel - und, inel, und)
    }

    /// The outcome of row `i`: 0 eligible, 1 ineligible, 2 undetermined.
    pub fn of(&self, i: usize) -> u8 {
        let (w, b) = (i / 64, i % 64);
        if self.ineligible.get(w).is_some_and(|x| x >> b & 1 == 1) {
            1
        } else if self.undetermined.get(w).is_some_and(|x| x >> b & 1 == 1) {
            2
        } else {
            0
        }
    }
}

/// One thread's share of the outputs: per programme, its words of `ineligible` and
/// `undetermined`, and its signal counts.
struct Share<'a> {
    words: std::ops::Range<usize>,
    out: Vec<(&'a mut [u64], &'a mut [u64])>,
    signals: Vec<Vec<u64>>,
}

fn evaluate_share(plan: &Plan, c: &dyn Columns, share: &mut Share<'_>) {
    let rows = c.rows();
    let mut cache = Cache::new(plan.slots);
    let mut buf = [ZERO; BLOCK];
    let mut start = share.words.start;
    while start < share.words.end {
        let nw = (share.words.end - start).min(BLOCK);
        let off = start - share.words.start;
        let valid: [u64; BLOCK] =
            std::array::from_fn(|w| if w < nw { all_of(rows, start + w) } else { 0 });
        for ((rules, (inel, und)), signals) in plan
            .programmes
            .iter()
            .zip(share.out.iter_mut())
            .zip(share.signals.iter_mut())
        {
            let mut fail = [0u64; BLOCK];
            let mut unknown = [0u64; BLOCK];
            let mut need = [0u64; BLOCK];
            let mut s = 0;
            for r in rules {
                let signal = r.kind == RuleKind::Signal;
                let mut any = 0;
                for w in 0..nw {
                    need[w] = if signal {
                        valid[w]
                    } else {
                        valid[w] & !fail[w]
                    };
                    any |= need[w];
                }
                if any != 0 {
                    let out = &mut buf[..nw];
                    eval_node(plan, &r.node, c, start, &need[..nw], out, &mut cache);
                    for (w, x) in out.iter().enumerate() {
                        let m = need[w];
                        let (t, k) = (x.t & m, x.k & m);
                        let unk = m & !k;
                        match r.kind {
                            RuleKind::Require => {
                                fail[w] |= match r.if_unknown {
                                    IfUnknown::Undetermined | IfUnknown::Pass => k & !t,
                                    IfUnknown::Fail => (k & !t) | unk,
                                };
                                if r.if_unknown == IfUnknown::Undetermined {
                                    unknown[w] |= unk;
                                }
                            }
                            RuleKind::Exclude => {
                                // Holding excludes; with unknown = pass ("ignore") an unknown
                                // does not.
                                fail[w] |= match r.if_unknown {
                                    IfUnknown::Pass | IfUnknown::Undetermined => t,
                                    IfUnknown::Fail => t | unk,
                                };
                                if r.if_unknown == IfUnknown::Undetermined {
                                    unknown[w] |= unk;
                                }
                            }
                            RuleKind::Signal => {
                                if let Some(sig) = signals.get_mut(s) {
                                    *sig += u64::from(t.count_ones());
                                }
                            }
                        }
                    }
                }
                if signal {
                    s += 1;
                }
            }
            for w in 0..nw {
                inel[off + w] = fail[w];
                und[off + w] = unknown[w] & !fail[w];
            }
        }
        start += nw;
    }
}

/// Evaluate a compiled programme over every row, on `threads` threads.
pub fn evaluate(p: &Compiled, c: &dyn Columns, threads: usize) -> Outcomes {
    evaluate_all(std::slice::from_ref(p), c, threads)
        .pop()
        .unwrap_or_default()
}

/// Evaluate compiled programmes together over every row, on `threads` threads: one pass over
/// the columns, block by block, with the leaves that programmes share evaluated once.
pub fn evaluate_all(ps: &[Compiled], c: &dyn Columns, threads: usize) -> Vec<Outcomes> {
    let plan = Plan::new(ps);
    let rows = c.rows();
    let words = rows.div_ceil(64);
    let threads = threads.clamp(1, 64);
    // Whole blocks per thread, so that no block is split.
    let per = words.div_ceil(BLOCK).div_ceil(threads).max(1) * BLOCK;
    let mut inel: Vec<Vec<u64>> = ps.iter().map(|_| vec![0u64; words]).collect();
    let mut und: Vec<Vec<u64>> = ps.iter().map(|_| vec![0u64; words]).collect();
    let mut shares: Vec<Share<'_>> = (0..threads)
        .map(|t| Share {
            words: (t * per).min(words)..((t + 1) * per).min(words),
            out: Vec::new(),
            signals: plan.signals.iter().map(|n| vec![0u64; *n]).collect(),
        })
        .collect();
    for (i, u) in inel.iter_mut().zip(und.iter_mut()) {
        for (share, (ci, cu)) in shares
            .iter_mut()
            .zip(i.chunks_mut(per).zip(u.chunks_mut(per)))
        {
            share.out.push((ci, cu));
        }
    }
    shares.retain(|s| !s.words.is_empty() && s.out.len() == ps.len());
    std::thread::scope(|scope| {
        let plan = &plan;
        for share in shares.iter_mut() {
            scope.spawn(move || evaluate_share(plan, c, share));
        }
    });
    let mut signals: Vec<Vec<u64>> = plan.signals.iter().map(|n| vec![0u64; *n]).collect();
    for share in &shares {
        for (total, part) in signals.iter_mut().zip(&share.signals) {
            for (a, b) in total.iter_mut().zip(part) {
                *a += b;
            }
        }
    }
    drop(shares);
    inel.into_iter()
        .zip(und)
        .zip(signals)
        .map(|((ineligible, undetermined), signals)| Outcomes {
            rows,
            ineligible,
            undetermined,
            signals,
        })
        .collect()
}

/// Columns built from facts in memory (small caseloads, tests).
#[derive(Clone, Debug, Default)]
pub struct FactColumns {
    rows: usize,
    enums: BTreeMap<Fact, Vec<u8>>,
    bools: BTreeMap<Fact, Vec<u8>>,
    dates: BTreeMap<Fact, Vec<i32>>,
    countries: BTreeMap<Fact, Vec<u16>>,
    sets: BTreeMap<Fact, Vec<u32>>,
    languages: [Vec<u64>; 3],
}

impl FactColumns {
    /// Columns of these people.
    pub fn new(people: &[Facts]) -> Self {
        use refuge_core::facts::FactValue;
        let mut c = FactColumns {
            rows: people.len(),
            ..Default::default()
        };
        for f in Fact::ALL {
            match crate::expr::fact_type(*f) {
                crate::expr::Type::Enum(_) => {
                    c.enums.insert(
                        *f,
                        people
                            .iter()
                            .map(|p| p.get(*f).and_then(|v| v.enum_index()).unwrap_or(u8::MAX))
                            .collect(),
                    );
                }
                crate::expr::Type::Bool => {
                    c.bools.insert(
                        *f,
                        people
                            .iter()
                            .map(|p| match p.get(*f) {
                                Some(FactValue::Bool(b)) => u8::from(b),
                                _ => 2,
                            })
                            .collect(),
                    );
                }
                crate::expr::Type::Date => {
                    c.dates.insert(
                        *f,
                        people
                            .iter()
                            .map(|p| match p.get(*f) {
                                Some(FactValue::Date(d)) => day_number(d),
                                _ => i32::MIN,
                            })
                            .collect(),
                    );
                }
                crate::expr::Type::Country => {
                    c.countries.insert(
                        *f,
                        people
                            .iter()
                            .map(|p| match p.get(*f) {
                                Some(FactValue::Country(x)) => x.index(),
                                _ => u16::MAX,
                            })
                            .collect(),
                    );
                }
                crate::expr::Type::EnumSet(_) => {
                    c.sets.insert(
                        *f,
                        people
                            .iter()
                            .map(|p| p.get(*f).and_then(|v| v.set_bits()).unwrap_or(1 << 31))
                            .collect(),
                    );
                }
                _ => {
                    for p in people {
                        let w = p.languages.map_or([0, 0, 1 << 63], |l| l.words());
                        for (col, x) in c.languages.iter_mut().zip(w) {
                            col.push(x);
                        }
                    }
                }
            }
        }
        c
    }
}

impl Columns for FactColumns {
    fn rows(&self) -> usize {
        self.rows
    }
    fn enums(&self, fact: Fact) -> &[u8] {
        self.enums.get(&fact).map_or(&[], Vec::as_slice)
    }
    fn bools(&self, fact: Fact) -> &[u8] {
        self.bools.get(&fact).map_or(&[], Vec::as_slice)
    }
    fn dates(&self, fact: Fact) -> &[i32] {
        self.dates.get(&fact).map_or(&[], Vec::as_slice)
    }
    fn countries(&self, fact: Fact) -> &[u16] {
        self.countries.get(&fact).map_or(&[], Vec::as_slice)
    }
    fn sets(&self, fact: Fact) -> &[u32] {
        self.sets.get(&fact).map_or(&[], Vec::as_slice)
    }
    fn languages(&self) -> [&[u64]; 3] {
        [&self.languages[0], &self.languages[1], &self.languages[2]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::programme::{Loaded, Outcome, Sets, decide, parse_file};
    use std::path::Path;
    use time::macros::date;

    const SETS: &str =
        "[eu]\ntype = \"country\"\nvalues = [\"DE\", \"NL\", \"FR\"]\nsource = \"t\"\n";

    fn texts() -> String {
        crate::programme::LANGUAGES
            .iter()
            .map(|l| format!("{l} = \"x\""))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn programme(rules: &[(&str, &str, &str)]) -> Programme {
        let t = texts();
        let mut src = format!(
            "id = \"p\"\nmodel = \"m\"\nas_of = \"2023-01-01\"\nstate = \"NL\"\nauthority = \"a\"\nsources = [\"s\"]\ntitle = {{ {t} }}\nsummary = {{ {t} }}\n\
             [parameters.max_age]\ntype = \"int\"\nvalues = [{{ from = \"2020-01-01\", value = 27, reference = \"r\" }}]\n"
        );
        for (i, (kind, when, unknown)) in rules.iter().enumerate() {
            src += &format!(
                "[[rules]]\nid = \"r{i}\"\nkind = \"{kind}\"\nwhen = '{when}'\nbasis = \"b\"\nunknown = \"{unknown}\"\nexplain = {{ {t} }}\n"
            );
        }
        let sets = Sets::parse(Path::new("sets.toml"), SETS).unwrap();
        match parse_file(Path::new("p.toml"), &src, &sets) {
            Ok(Loaded::Programme(p)) => p,
            Err(e) => panic!("{e}"),
            _ => panic!(),
        }
    }

    /// A tiny deterministic generator of people with many unknowns.
    fn people(n: usize) -> Vec<Facts> {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        (0..n)
            .map(|_| {
                let mut j = serde_json::Map::new();
                let pick = |v: &[&str], r: u64| v[(r as usize) % v.len()].to_owned();
                if next(5) > 0 {
                    j.insert(
                        "nationality".into(),
                        pick(&["RU", "BY", "UA", "DE"], next(4)).into(),
                    );
                }
                if next(5) > 0 {
                    j.insert(
                        "sex".into(),
                        pick(&["male", "female", "other"], next(3)).into(),
                    );
                }
                if next(6) > 0 {
                    let y = 1960 + next(50);
                    // 29 February birthdays included
                    let (m, d) = if next(10) == 0 {
                        (2, 29)
                    } else {
                        (1 + next(12), 1 + next(28))
                    };
                    let y = if (m, d) == (2, 29) {
                        1960 + 4 * next(12)
                    } else {
                        y
                    };
                    j.insert("birth_date".into(), format!("{y:04}-{m:02}-{d:02}").into());
                }
                if next(5) > 0 {
                    j.insert(
                        "current_country".into(),
                        pick(&["NL", "DE", "GE", "KZ", "AM"], next(5)).into(),
                    );
                }
                if next(4) > 0 {
                    j.insert("summons_received".into(), (next(2) == 0).into());
                }
                if next(4) > 0 {
                    j.insert(
                        "documents".into(),
                        serde_json::json!([pick(
                            &["military_id", "summons", "internal_passport"],
                            next(3)
                        )]),
                    );
                }
                if next(4) > 0 {
                    j.insert(
                        "stay_expires_on".into(),
                        format!("2026-{:02}-{:02}", 1 + next(12), 1 + next(28)).into(),
                    );
                }
                if next(4) > 0 {
                    j.insert("sanctions_listed".into(), (next(10) == 0).into());
                }
                if next(4) > 0 {
                    j.insert(
                        "refusal".into(),
                        pick(&["none", "evaded_callup", "objected", "deserted"], next(4)).into(),
                    );
                }
                if next(4) > 0 {
                    j.insert(
                        "languages".into(),
                        serde_json::json!([pick(&["ru", "nl", "en"], next(3))]),
                    );
                }
                serde_json::from_value(serde_json::Value::Object(j)).unwrap()
            })
            .collect()
    }

    #[test]
    fn pack_puts_byte_i_at_bit_i() {
        let mut b = [0u8; 64];
        assert_eq!(pack(&b), 0);
        for i in [0, 1, 7, 8, 31, 56, 63] {
            b = [0u8; 64];
            b[i] = 1;
            assert_eq!(pack(&b), 1u64 << i, "{i}");
        }
        let all = [1u8; 64];
        assert_eq!(pack(&all), u64::MAX);
        let alt: [u8; 64] = std::array::from_fn(|i| u8::from(i % 3 == 0));
        let want = (0..64).filter(|i| i % 3 == 0).fold(0u64, |a, i| a | 1 << i);
        assert_eq!(pack(&alt), want);
    }

    #[test]
    fn columnar_agrees_with_row_by_row_on_every_person() {
        let p = programme(&[
            ("require", "nationality in [\"RU\", \"BY\"]", "undetermined"),
            (
                "require",
                "sex == \"male\" and age >= 18 and age <= param.max_age",
                "undetermined",
            ),
            (
                "require",
                "refusal != \"none\" or summons_received",
                "undetermined",
            ),
            (
                "require",
                "current_country in eu and not (\"military_id\" in documents)",
                "fail",
            ),
            ("exclude", "sanctions_listed", "ignore"),
            ("exclude", "age > 60 or age < 16", "undetermined"),
            (
                "signal",
                "known(stay_expires_on) and days_until(stay_expires_on) <= 30 and days_until(stay_expires_on) >= 0",
                "undetermined",
            ),
            (
                "signal",
                "\"nl\" in languages and age == 29",
                "undetermined",
            ),
            (
                "require",
                "days_since(birth_date) > 3000 and known(languages)",
                "pass",
            ),
        ]);
        let loose = programme(&[
            ("require", "nationality in [\"RU\", \"BY\"]", "undetermined"),
            (
                "require",
                "(current_country in eu and \"nl\" in languages) or (current_country == \"DE\" and \"en\" in languages) or (\"ru\" in languages and current_country in [\"GE\", \"AM\", \"KZ\"]) or sex == \"female\"",
                "undetermined",
            ),
            (
                "require",
                "age >= 18 and age <= param.max_age + 20",
                "undetermined",
            ),
            ("exclude", "sanctions_listed", "ignore"),
            (
                "signal",
                "known(stay_expires_on) and days_until(stay_expires_on) <= 30 and days_until(stay_expires_on) >= 0",
                "undetermined",
            ),
            ("signal", "\"nl\" in languages", "undetermined"),
        ]);
        for (p, strict) in [(&p, true), (&loose, false)] {
            let ppl = people(5_000);
            let cols = FactColumns::new(&ppl);
            for on in [
                date!(2026 - 11 - 22),
                date!(2027 - 02 - 28),
                date!(2028 - 02 - 29),
                date!(2027 - 03 - 01),
            ] {
                let compiled = compile_programme(p, on).unwrap();
                for threads in [1, 2, 3] {
                    let out = evaluate(&compiled, &cols, threads);
                    let mut counts = [0u64; 3];
                    let mut signals = [0u64; 2];
                    for (i, f) in ppl.iter().enumerate() {
                        let d = decide(p, f, on, "en");
                        let want = match d.outcome {
                            Outcome::Eligible => 0,
                            Outcome::Ineligible => 1,
                            Outcome::Undetermined => 2,
                        };
                        assert_eq!(
                            out.of(i),
                            want,
                            "row {i} on {on}: {f:?}: {:?}",
                            d.trace
                                .iter()
                                .map(|t| (t.id.clone(), t.result))
                                .collect::<Vec<_>>()
                        );
                        counts[usize::from(want)] += 1;
                        let ids: &[&str] = if strict { &["r6", "r7"] } else { &["r4", "r5"] };
                        for (s, id) in ids.iter().enumerate() {
                            signals[s] += u64::from(d.signals.iter().any(|x| x == id));
                        }
                    }
                    assert_eq!(out.counts(), (counts[0], counts[1], counts[2]));
                    assert_eq!(out.signals, signals.to_vec());
                    assert!(
                        strict || counts.iter().all(|c| *c > 300),
                        "{counts:?}: every outcome occurs"
                    );
                }
            }
        }
    }
}
