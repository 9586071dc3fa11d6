//! Caseloads: the facts of many people, held column by column for fast evaluation.
//!
//! A [`Caseload`] keeps one typed column per fact of the vocabulary (all 24), every column the
//! same length, with "unknown" a sentinel value in every column (see [`Caseload`] for the
//! layout). The rule evaluator reads the columns directly ([`Caseload::column`],
//! [`Caseload::enums`], …); [`Caseload::get`] and [`Caseload::row`] turn one row back into
//! [`FactValue`]s and [`Facts`] to explain a single result.
//!
//! Three file formats (docs/caseloads.md), chosen by extension ([`CaseloadFormat`]):
//!
//! - **CSV** (`.csv`): a header of fact names (any subset, any order), one person per line, sets
//!   `;`-separated, an empty cell is unknown. Read from bytes in parallel without a per-cell
//!   allocation ([`Caseload::from_csv_bytes`], [`Caseload::read_csv`]).
//! - **JSON Lines** (`.jsonl`): one facts object per line, as in a facts file.
//! - **Binary** (`.rcl`, "refuge caseload"): a small header, then each column as raw
//!   little-endian bytes; loads at memory speed and is validated on read.
//!
//! Readers report progress as the number of input bytes consumed; writers and the synthetic
//! generator as the number of rows done.

use refuge_core::country::Country;
use refuge_core::facts::{Fact, FactType, FactValue, Facts, UnknownFact, ValueProblem};
use refuge_core::language::{Language, LanguageSet};
use refuge_core::suggest::{DidYouMean, nearest};
use std::borrow::Cow;
use std::fmt;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use time::Date;

// ---------------------------------------------------------------------------------------------
// Layout
// ---------------------------------------------------------------------------------------------

/// The number of facts, hence of columns.
pub const FACTS: usize = Fact::ALL.len();
/// An unknown enum value (enum columns hold the value's `index()`).
pub const UNKNOWN_ENUM: u8 = u8::MAX;
/// An unknown boolean (bool columns hold 0 for false, 1 for true).
pub const UNKNOWN_BOOL: u8 = 2;
/// An unknown date (date columns hold days since 1970-01-01, [`date_to_days`]).
pub const UNKNOWN_DATE: i32 = i32::MIN;
/// An unknown country (country columns hold [`Country::index`]).
pub const UNKNOWN_COUNTRY: u16 = u16::MAX;
/// An unknown enum set (set columns hold the set's bitmask, [`refuge_core::facts::EnumSet::bits`];
/// a known empty set is 0).
pub const UNKNOWN_SET: u32 = 1 << 31;
/// The number of 64-bit words of a language set ([`LanguageSet::words`]).
pub const LANGUAGE_WORDS: usize = 3;
/// An unknown language set: this bit set in the last word, every other bit clear. (Bit 63 of
/// word 2 is language index 191, past the last of the 183 languages.) A known empty set is all
/// zeros.
pub const UNKNOWN_LANGUAGES: u64 = 1 << 63;

const UNKNOWN_LANGUAGE_WORDS: [u64; LANGUAGE_WORDS] = [0, 0, UNKNOWN_LANGUAGES];

/// The Julian day number of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;

// Every sentinel must be out of range of real values.
const _: () = {
    let mut i = 0;
    while i < Fact::ALL.len() {
        match Fact::ALL[i].fact_type() {
            FactType::Enum { values } => assert!(values.len() < UNKNOWN_ENUM as usize),
            FactType::EnumSet { values } => assert!(values.len() < 31),
            _ => {}
        }
        i += 1;
    }
    assert!(Language::ALL.len() < 64 * LANGUAGE_WORDS);
    assert!(Language::ALL.len() > 64 * (LANGUAGE_WORDS - 1));
    assert!(Country::ALL.len() < UNKNOWN_COUNTRY as usize);
};

/// Days since 1970-01-01 (negative before), as stored in date columns.
pub fn date_to_days(date: Date) -> i32 {
    date.to_julian_day() - UNIX_EPOCH_JULIAN_DAY
}

/// The date `days` after 1970-01-01; `None` for [`UNKNOWN_DATE`] and out of range.
pub fn days_to_date(days: i32) -> Option<Date> {
    if days == UNKNOWN_DATE {
        return None;
    }
    days.checked_add(UNIX_EPOCH_JULIAN_DAY)
        .and_then(|jd| Date::from_julian_day(jd).ok())
}

/// The column slot of a fact.
fn slot(fact: Fact) -> usize {
    usize::from(fact.index())
}

/// The valid bits of the last word of a language set.
fn last_language_word_mask() -> u64 {
    (1u64 << (Language::ALL.len() - 64 * (LANGUAGE_WORDS - 1))) - 1
}

/// The valid bits of an enum-set fact with `n` values.
fn set_mask(n: usize) -> u32 {
    (1u32 << n) - 1
}

/// One column's storage.
#[derive(Clone, PartialEq, Eq)]
enum Data {
    Country(Vec<u16>),
    Date(Vec<i32>),
    Bool(Vec<u8>),
    Enum(Vec<u8>),
    Set(Vec<u32>),
    /// Planar: word `w` of every row's set in `[w]`.
    Languages([Vec<u64>; LANGUAGE_WORDS]),
}

impl Data {
    fn new(ty: FactType) -> Self {
        match ty {
            FactType::Country => Data::Country(Vec::new()),
            FactType::Date => Data::Date(Vec::new()),
            FactType::Bool => Data::Bool(Vec::new()),
            FactType::Enum { .. } => Data::Enum(Vec::new()),
            FactType::EnumSet { .. } => Data::Set(Vec::new()),
            FactType::LanguageSet => Data::Languages(Default::default()),
        }
    }

    /// An all-unknown column of `rows` rows.
    fn unknown(ty: FactType, rows: usize) -> Self {
        match ty {
            FactType::Country => Data::Country(vec![UNKNOWN_COUNTRY; rows]),
            FactType::Date => Data::Date(vec![UNKNOWN_DATE; rows]),
            FactType::Bool => Data::Bool(vec![UNKNOWN_BOOL; rows]),
            FactType::Enum { .. } => Data::Enum(vec![UNKNOWN_ENUM; rows]),
            FactType::EnumSet { .. } => Data::Set(vec![UNKNOWN_SET; rows]),
            FactType::LanguageSet => {
                Data::Languages(UNKNOWN_LANGUAGE_WORDS.map(|word| vec![word; rows]))
            }
        }
    }

    fn reserve(&mut self, n: usize) {
        match self {
            Data::Country(v) => v.reserve(n),
            Data::Date(v) => v.reserve(n),
            Data::Bool(v) | Data::Enum(v) => v.reserve(n),
            Data::Set(v) => v.reserve(n),
            Data::Languages(w) => w.iter_mut().for_each(|v| v.reserve(n)),
        }
    }

    fn clear(&mut self) {
        match self {
            Data::Country(v) => v.clear(),
            Data::Date(v) => v.clear(),
            Data::Bool(v) | Data::Enum(v) => v.clear(),
            Data::Set(v) => v.clear(),
            Data::Languages(w) => w.iter_mut().for_each(Vec::clear),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Data::Country(v) => v.capacity() * 2,
            Data::Date(v) => v.capacity() * 4,
            Data::Bool(v) | Data::Enum(v) => v.capacity(),
            Data::Set(v) => v.capacity() * 4,
            Data::Languages(w) => w.iter().map(|v| v.capacity() * 8).sum(),
        }
    }

    fn push_unknown(&mut self) {
        match self {
            Data::Country(v) => v.push(UNKNOWN_COUNTRY),
            Data::Date(v) => v.push(UNKNOWN_DATE),
            Data::Bool(v) => v.push(UNKNOWN_BOOL),
            Data::Enum(v) => v.push(UNKNOWN_ENUM),
            Data::Set(v) => v.push(UNKNOWN_SET),
            Data::Languages(w) => push_words(w, UNKNOWN_LANGUAGE_WORDS),
        }
    }

    /// Appends `other`, a column of the same fact.
    fn extend_from(&mut self, other: &Data) {
        match (self, other) {
            (Data::Country(a), Data::Country(b)) => a.extend_from_slice(b),
            (Data::Date(a), Data::Date(b)) => a.extend_from_slice(b),
            (Data::Bool(a), Data::Bool(b)) | (Data::Enum(a), Data::Enum(b)) => {
                a.extend_from_slice(b)
            }
            (Data::Set(a), Data::Set(b)) => a.extend_from_slice(b),
            (Data::Languages(a), Data::Languages(b)) => {
                for (a, b) in a.iter_mut().zip(b) {
                    a.extend_from_slice(b);
                }
            }
            _ => {}
        }
    }

    /// Appends one value (of this column's type; anything else is stored as unknown).
    fn push_value(&mut self, value: Option<FactValue>) {
        match self {
            Data::Country(v) => v.push(match value {
                Some(FactValue::Country(c)) => c.index(),
                _ => UNKNOWN_COUNTRY,
            }),
            Data::Date(v) => v.push(match value {
                Some(FactValue::Date(d)) => date_to_days(d),
                _ => UNKNOWN_DATE,
            }),
            Data::Bool(v) => v.push(match value {
                Some(FactValue::Bool(b)) => u8::from(b),
                _ => UNKNOWN_BOOL,
            }),
            Data::Enum(v) => v.push(value.and_then(|x| x.enum_index()).unwrap_or(UNKNOWN_ENUM)),
            Data::Set(v) => v.push(value.and_then(|x| x.set_bits()).unwrap_or(UNKNOWN_SET)),
            Data::Languages(w) => push_words(
                w,
                match value {
                    Some(FactValue::Languages(s)) => s.words(),
                    _ => UNKNOWN_LANGUAGE_WORDS,
                },
            ),
        }
    }

    fn get(&self, fact: Fact, row: usize) -> Option<FactValue> {
        match self {
            Data::Country(v) => Country::from_index(*v.get(row)?).map(FactValue::Country),
            Data::Date(v) => days_to_date(*v.get(row)?).map(FactValue::Date),
            Data::Bool(v) => match v.get(row)? {
                0 => Some(FactValue::Bool(false)),
                1 => Some(FactValue::Bool(true)),
                _ => None,
            },
            Data::Enum(v) => FactValue::from_enum_index(fact, *v.get(row)?),
            Data::Set(v) => FactValue::from_set_bits(fact, *v.get(row)?),
            Data::Languages(w) => LanguageColumn::of(w).get(row).map(FactValue::Languages),
        }
    }

    fn as_ref(&self) -> ColumnRef<'_> {
        match self {
            Data::Country(v) => ColumnRef::Country(v),
            Data::Date(v) => ColumnRef::Date(v),
            Data::Bool(v) => ColumnRef::Bool(v),
            Data::Enum(v) => ColumnRef::Enum(v),
            Data::Set(v) => ColumnRef::EnumSet(v),
            Data::Languages(w) => ColumnRef::Languages(LanguageColumn::of(w)),
        }
    }
}

fn push_words(columns: &mut [Vec<u64>; LANGUAGE_WORDS], words: [u64; LANGUAGE_WORDS]) {
    for (column, word) in columns.iter_mut().zip(words) {
        column.push(word);
    }
}

/// Read access to one fact's column, whatever its type. Every slice has [`Caseload::len`]
/// entries; see [`Caseload`] for the encodings and the unknown sentinels.
#[derive(Clone, Copy, Debug)]
pub enum ColumnRef<'a> {
    /// [`Country::index`], or [`UNKNOWN_COUNTRY`].
    Country(&'a [u16]),
    /// Days since 1970-01-01 ([`date_to_days`]), or [`UNKNOWN_DATE`].
    Date(&'a [i32]),
    /// 0 (false), 1 (true), or [`UNKNOWN_BOOL`].
    Bool(&'a [u8]),
    /// The value's index in [`FactType::Enum`]'s `values`, or [`UNKNOWN_ENUM`].
    Enum(&'a [u8]),
    /// Bit `i` is [`FactType::EnumSet`]'s `values[i]`; [`UNKNOWN_SET`] when unknown.
    EnumSet(&'a [u32]),
    /// Language sets, word by word.
    Languages(LanguageColumn<'a>),
}

impl<'a> ColumnRef<'a> {
    /// The number of rows.
    pub fn len(&self) -> usize {
        match self {
            ColumnRef::Country(v) => v.len(),
            ColumnRef::Date(v) => v.len(),
            ColumnRef::Bool(v) | ColumnRef::Enum(v) => v.len(),
            ColumnRef::EnumSet(v) => v.len(),
            ColumnRef::Languages(l) => l.len(),
        }
    }

    /// Whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether row `row` is known (`false` past the end).
    pub fn is_known(&self, row: usize) -> bool {
        match self {
            ColumnRef::Country(v) => v.get(row).is_some_and(|x| *x != UNKNOWN_COUNTRY),
            ColumnRef::Date(v) => v.get(row).is_some_and(|x| *x != UNKNOWN_DATE),
            ColumnRef::Bool(v) => v.get(row).is_some_and(|x| *x != UNKNOWN_BOOL),
            ColumnRef::Enum(v) => v.get(row).is_some_and(|x| *x != UNKNOWN_ENUM),
            ColumnRef::EnumSet(v) => v.get(row).is_some_and(|x| *x != UNKNOWN_SET),
            ColumnRef::Languages(l) => l.is_known(row),
        }
    }

    /// The enum column, if this is one.
    pub fn as_enum(self) -> Option<&'a [u8]> {
        match self {
            ColumnRef::Enum(v) => Some(v),
            _ => None,
        }
    }

    /// The bool column, if this is one.
    pub fn as_bool(self) -> Option<&'a [u8]> {
        match self {
            ColumnRef::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// The date column, if this is one.
    pub fn as_date(self) -> Option<&'a [i32]> {
        match self {
            ColumnRef::Date(v) => Some(v),
            _ => None,
        }
    }

    /// The country column, if this is one.
    pub fn as_country(self) -> Option<&'a [u16]> {
        match self {
            ColumnRef::Country(v) => Some(v),
            _ => None,
        }
    }

    /// The enum-set column, if this is one.
    pub fn as_set(self) -> Option<&'a [u32]> {
        match self {
            ColumnRef::EnumSet(v) => Some(v),
            _ => None,
        }
    }

    /// The language column, if this is one.
    pub fn as_languages(self) -> Option<LanguageColumn<'a>> {
        match self {
            ColumnRef::Languages(l) => Some(l),
            _ => None,
        }
    }
}

/// The `languages` column: word `w` of every row's [`LanguageSet::words`] in `words[w]`, so
/// that testing one language reads one 8-byte word per row. Unknown is
/// [`UNKNOWN_LANGUAGES`] in the last word (and zeros in the others).
#[derive(Clone, Copy, Debug)]
pub struct LanguageColumn<'a> {
    /// The words, plane by plane.
    pub words: [&'a [u64]; LANGUAGE_WORDS],
}

impl<'a> LanguageColumn<'a> {
    fn of(columns: &'a [Vec<u64>; LANGUAGE_WORDS]) -> Self {
        let [a, b, c] = columns;
        LanguageColumn { words: [a, b, c] }
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.words[0].len()
    }

    /// Whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether row `row`'s languages are known (`false` past the end).
    pub fn is_known(&self, row: usize) -> bool {
        self.words[LANGUAGE_WORDS - 1]
            .get(row)
            .is_some_and(|w| *w & UNKNOWN_LANGUAGES == 0)
    }

    /// Row `row`'s languages; `None` when unknown or past the end.
    pub fn get(&self, row: usize) -> Option<LanguageSet> {
        let [a, b, c] = self.words;
        LanguageSet::from_words([*a.get(row)?, *b.get(row)?, *c.get(row)?])
    }

    /// Whether row `row` speaks `language`; `None` when the languages are unknown.
    pub fn contains(&self, row: usize, language: Language) -> Option<bool> {
        if !self.is_known(row) {
            return None;
        }
        let i = usize::from(language.index());
        let word = self.words.get(i / 64)?.get(row)?;
        Some(word & (1u64 << (i % 64)) != 0)
    }
}

// ---------------------------------------------------------------------------------------------
// The caseload
// ---------------------------------------------------------------------------------------------

/// The facts of many people, one typed column per fact, every column [`len`](Self::len) long.
///
/// Layout (row `i` of every column is person `i`; "unknown" is a sentinel in every column):
///
/// | fact type | column | value | unknown |
/// |---|---|---|---|
/// | enum (`sex`, `refusal`, …) | `Vec<u8>` | the value's `index()` | [`UNKNOWN_ENUM`] (255) |
/// | bool | `Vec<u8>` | 0 false, 1 true | [`UNKNOWN_BOOL`] (2) |
/// | date | `Vec<i32>` | days since 1970-01-01 | [`UNKNOWN_DATE`] (`i32::MIN`) |
/// | country | `Vec<u16>` | [`Country::index`] | [`UNKNOWN_COUNTRY`] (`u16::MAX`) |
/// | enum set | `Vec<u32>` | bitmask by value index (0: known empty) | [`UNKNOWN_SET`] (bit 31) |
/// | `languages` | three `Vec<u64>`, one per word of [`LanguageSet::words`] | bitmask by [`Language::index`] | [`UNKNOWN_LANGUAGES`] (bit 63 of the last word) |
///
/// That is 65 bytes a person: 65 MB for a million people. Every value held is valid (indexes in
/// range, bitmasks within their values), so generic code may trust the columns.
#[derive(Clone, PartialEq, Eq)]
pub struct Caseload {
    len: usize,
    columns: [Data; FACTS],
}

impl Default for Caseload {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Caseload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caseload")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Caseload {
    /// An empty caseload.
    pub fn new() -> Self {
        Caseload {
            len: 0,
            columns: std::array::from_fn(|i| Data::new(Fact::ALL[i].fact_type())),
        }
    }

    /// An empty caseload with room for `rows` people.
    pub fn with_capacity(rows: usize) -> Self {
        let mut caseload = Self::new();
        caseload.reserve(rows);
        caseload
    }

    /// Makes room for `additional` more people.
    pub fn reserve(&mut self, additional: usize) {
        self.columns.iter_mut().for_each(|c| c.reserve(additional));
    }

    /// The number of people.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is nobody.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Removes everybody, keeping the memory.
    pub fn clear(&mut self) {
        self.columns.iter_mut().for_each(Data::clear);
        self.len = 0;
    }

    /// The memory held by the columns, in bytes.
    pub fn heap_bytes(&self) -> usize {
        self.columns.iter().map(Data::heap_bytes).sum()
    }

    /// Adds one person.
    pub fn push(&mut self, facts: &Facts) {
        for (column, fact) in self.columns.iter_mut().zip(Fact::ALL) {
            column.push_value(facts.get(*fact));
        }
        self.len += 1;
    }

    /// Adds everybody in `other`, after the people already here.
    pub fn append(&mut self, other: &Caseload) {
        for (column, theirs) in self.columns.iter_mut().zip(&other.columns) {
            column.extend_from(theirs);
        }
        self.len += other.len;
    }

    /// The column of `fact`.
    pub fn column(&self, fact: Fact) -> ColumnRef<'_> {
        self.columns[slot(fact)].as_ref()
    }

    /// The value of `fact` for person `row`; `None` when unknown or past the end.
    pub fn get(&self, row: usize, fact: Fact) -> Option<FactValue> {
        self.columns[slot(fact)].get(fact, row)
    }

    /// Person `row`'s facts; `None` past the end.
    pub fn row(&self, row: usize) -> Option<Facts> {
        if row >= self.len {
            return None;
        }
        let mut facts = Facts::default();
        for fact in Fact::ALL {
            // Every column holds values of its own fact's type: this cannot fail.
            let _ = facts.set(*fact, self.get(row, *fact));
        }
        Some(facts)
    }

    /// The number of people for whom `fact` is known.
    pub fn known(&self, fact: Fact) -> usize {
        let column = self.column(fact);
        match column {
            ColumnRef::Country(v) => v.iter().filter(|x| **x != UNKNOWN_COUNTRY).count(),
            ColumnRef::Date(v) => v.iter().filter(|x| **x != UNKNOWN_DATE).count(),
            ColumnRef::Bool(v) => v.iter().filter(|x| **x != UNKNOWN_BOOL).count(),
            ColumnRef::Enum(v) => v.iter().filter(|x| **x != UNKNOWN_ENUM).count(),
            ColumnRef::EnumSet(v) => v.iter().filter(|x| **x != UNKNOWN_SET).count(),
            ColumnRef::Languages(l) => l.words[LANGUAGE_WORDS - 1]
                .iter()
                .filter(|w| **w & UNKNOWN_LANGUAGES == 0)
                .count(),
        }
    }

    /// An enum fact's column (value indexes, [`UNKNOWN_ENUM`]); empty if `fact` is no enum.
    pub fn enums(&self, fact: Fact) -> &[u8] {
        self.column(fact).as_enum().unwrap_or_default()
    }

    /// A bool fact's column (0, 1, [`UNKNOWN_BOOL`]); empty if `fact` is no bool.
    pub fn bools(&self, fact: Fact) -> &[u8] {
        self.column(fact).as_bool().unwrap_or_default()
    }

    /// A date fact's column (days since 1970-01-01, [`UNKNOWN_DATE`]); empty if `fact` is no
    /// date.
    pub fn dates(&self, fact: Fact) -> &[i32] {
        self.column(fact).as_date().unwrap_or_default()
    }

    /// A country fact's column ([`Country::index`], [`UNKNOWN_COUNTRY`]); empty if `fact` is no
    /// country.
    pub fn countries(&self, fact: Fact) -> &[u16] {
        self.column(fact).as_country().unwrap_or_default()
    }

    /// An enum-set fact's column (bitmasks, [`UNKNOWN_SET`]); empty if `fact` is no enum set.
    pub fn sets(&self, fact: Fact) -> &[u32] {
        self.column(fact).as_set().unwrap_or_default()
    }

    /// The `languages` column.
    pub fn languages(&self) -> LanguageColumn<'_> {
        match &self.columns[slot(Fact::Languages)] {
            Data::Languages(w) => LanguageColumn::of(w),
            _ => LanguageColumn { words: [&[]; 3] },
        }
    }

    /// Whether person `row` speaks `language`; `None` when unknown or past the end.
    pub fn speaks(&self, row: usize, language: Language) -> Option<bool> {
        self.languages().contains(row, language)
    }
}

impl crate::columnar::Columns for Caseload {
    fn rows(&self) -> usize {
        self.len
    }

    fn enums(&self, fact: Fact) -> &[u8] {
        Caseload::enums(self, fact)
    }

    fn bools(&self, fact: Fact) -> &[u8] {
        Caseload::bools(self, fact)
    }

    fn dates(&self, fact: Fact) -> &[i32] {
        Caseload::dates(self, fact)
    }

    fn countries(&self, fact: Fact) -> &[u16] {
        Caseload::countries(self, fact)
    }

    fn sets(&self, fact: Fact) -> &[u32] {
        Caseload::sets(self, fact)
    }

    fn languages(&self) -> [&[u64]; 3] {
        Caseload::languages(self).words
    }
}

impl<'a> FromIterator<&'a Facts> for Caseload {
    fn from_iter<I: IntoIterator<Item = &'a Facts>>(iter: I) -> Self {
        let mut caseload = Caseload::new();
        for facts in iter {
            caseload.push(facts);
        }
        caseload
    }
}

// ---------------------------------------------------------------------------------------------
// Errors and formats
// ---------------------------------------------------------------------------------------------

/// Why a caseload could not be read (or written).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaseloadError {
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// An error in a named file.
    #[error("{}: {error}", .path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong in it.
        error: Box<CaseloadError>,
    },
    /// A file name whose extension names no caseload format.
    #[error(
        "{}: expected a file name ending in .csv, .jsonl or .rcl{}",
        format_found(.found),
        DidYouMean(*.suggestion)
    )]
    UnknownFormat {
        /// The extension found (empty when there is none).
        found: String,
        /// The closest known extension, when one is close.
        suggestion: Option<&'static str>,
    },
    /// A CSV file without a header line.
    #[error("the file is empty: expected a header line of fact names")]
    NoHeader,
    /// A CSV header names no fact.
    #[error("line 1, column {column}: {error}")]
    UnknownColumn {
        /// The column (from 1).
        column: usize,
        /// The name and the closest fact name.
        error: UnknownFact,
    },
    /// A CSV header names a fact twice.
    #[error("line 1, column {second}: fact \"{fact}\" is given twice (first in column {first})")]
    DuplicateColumn {
        /// The fact.
        fact: Fact,
        /// Its first column (from 1).
        first: usize,
        /// Its second column (from 1).
        second: usize,
    },
    /// A CSV cell that is no valid value of its column's fact.
    #[error("line {line}, column \"{fact}\": {problem}")]
    Cell {
        /// The line (from 1, the header being line 1).
        line: u64,
        /// The column's fact.
        fact: Fact,
        /// What is wrong with the cell.
        problem: CellProblem,
    },
    /// A CSV line of the wrong shape (number of cells, quoting).
    #[error("line {line}: {message}")]
    Row {
        /// The line (from 1).
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// A JSON Lines line that is no facts object.
    #[error("line {line}, column {column}: {message}")]
    Json {
        /// The line (from 1).
        line: u64,
        /// The column within the line (from 1).
        column: usize,
        /// What is wrong (names the fact and what was expected).
        message: String,
    },
    /// A binary (`.rcl`) file that is damaged or not one.
    #[error("not a valid refuge caseload (.rcl) file: {0}")]
    Binary(String),
}

/// What is wrong with a CSV cell.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CellProblem {
    /// Not a valid value of the fact.
    #[error(transparent)]
    Value(#[from] ValueProblem),
    /// Not UTF-8 text.
    #[error("not valid UTF-8")]
    NotUtf8,
}

/// The start of an unknown-format message.
fn format_found(found: &str) -> String {
    if found.is_empty() {
        "no file extension".to_owned()
    } else {
        format!("unknown caseload format \".{found}\"")
    }
}

impl CaseloadError {
    /// Whether the input is at fault (a bad file, a file that is missing or not readable), as
    /// opposed to a failure of the system: such errors are the user's to fix (exit code 2).
    pub fn is_input_error(&self) -> bool {
        match self {
            CaseloadError::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::NotFound
                    | io::ErrorKind::PermissionDenied
                    | io::ErrorKind::IsADirectory
                    | io::ErrorKind::InvalidData
            ),
            CaseloadError::File { error, .. } => error.is_input_error(),
            _ => true,
        }
    }

    /// This error, said to be in `path`.
    pub fn in_file(self, path: &Path) -> Self {
        CaseloadError::File {
            path: path.to_owned(),
            error: Box::new(self),
        }
    }

    /// Moves line numbers on by `by` (a part parsed on its own numbers its lines from 1).
    fn shift_lines(mut self, by: u64) -> Self {
        match &mut self {
            CaseloadError::Cell { line, .. }
            | CaseloadError::Row { line, .. }
            | CaseloadError::Json { line, .. } => *line += by,
            _ => {}
        }
        self
    }
}

/// A caseload file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CaseloadFormat {
    /// CSV (`.csv`).
    Csv,
    /// JSON Lines (`.jsonl`).
    JsonLines,
    /// The binary format (`.rcl`).
    Binary,
}

impl CaseloadFormat {
    /// Every format.
    pub const ALL: &'static [CaseloadFormat] = &[
        CaseloadFormat::Csv,
        CaseloadFormat::JsonLines,
        CaseloadFormat::Binary,
    ];

    /// The file extension, without the dot; also the format's name in JSON output.
    pub fn extension(self) -> &'static str {
        match self {
            CaseloadFormat::Csv => "csv",
            CaseloadFormat::JsonLines => "jsonl",
            CaseloadFormat::Binary => "rcl",
        }
    }

    /// The format named by `path`'s extension (in any case).
    pub fn from_path(path: &Path) -> Result<Self, CaseloadError> {
        let found = path
            .extension()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self::ALL
            .iter()
            .copied()
            .find(|f| found.eq_ignore_ascii_case(f.extension()))
            .ok_or_else(|| CaseloadError::UnknownFormat {
                suggestion: nearest(&found, Self::ALL.iter().map(|f| f.extension())),
                found,
            })
    }
}

impl fmt::Display for CaseloadFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CaseloadFormat::Csv => "CSV",
            CaseloadFormat::JsonLines => "JSON Lines",
            CaseloadFormat::Binary => "binary (.rcl)",
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Parallel line reading
// ---------------------------------------------------------------------------------------------

/// Bytes of input parsed by one thread at a time.
const PART_BYTES: usize = 4 << 20;
/// Below this size a block is parsed on one thread.
const MIN_SPLIT: usize = 256 << 10;

/// The number of threads readers use.
fn threads() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8)
}

/// A parser of whole lines (CSV rows, JSON Lines), run on several parts of the input at once.
trait LineParser: Sync {
    /// Parses the lines of `part` (which ends at a line end, or at the end of the input) into
    /// `out`; returns the number of lines, blank ones included. Errors number lines from 1.
    fn parse(&self, part: &[u8], out: &mut Caseload) -> Result<u64, CaseloadError>;
}

/// Feeds blocks of whole lines to a [`LineParser`], split between threads, and gathers the
/// rows in input order.
struct Loader<'p, P> {
    parser: &'p P,
    out: Caseload,
    partials: Vec<Caseload>,
    /// Lines before the next block (the header included).
    lines: u64,
    /// Bytes fed so far.
    fed: u64,
    /// The expected size of the whole input, to reserve memory once.
    total: Option<u64>,
}

impl<'p, P: LineParser> Loader<'p, P> {
    fn new(parser: &'p P, lines_before: u64, total: Option<u64>) -> Self {
        Loader {
            parser,
            out: Caseload::new(),
            partials: (0..threads()).map(|_| Caseload::new()).collect(),
            lines: lines_before,
            fed: 0,
            total,
        }
    }

    fn block_bytes(&self) -> usize {
        PART_BYTES * self.partials.len()
    }

    /// Parses a block of whole lines.
    fn feed(&mut self, block: &[u8]) -> Result<(), CaseloadError> {
        let parts = split_parts(block, self.partials.len());
        let parser = self.parser;
        let results: Vec<Result<u64, CaseloadError>> = std::thread::scope(|scope| {
            let mut jobs = parts.iter().zip(self.partials.iter_mut());
            let first = jobs.next();
            let handles: Vec<_> = jobs
                .map(|(part, partial)| scope.spawn(move || parser.parse(part, partial)))
                .collect();
            let mut results = Vec::with_capacity(parts.len());
            if let Some((part, partial)) = first {
                results.push(parser.parse(part, partial));
            }
            for handle in handles {
                results.push(handle.join().unwrap_or_else(|_| {
                    Err(CaseloadError::Io(io::Error::other(
                        "a parsing thread failed",
                    )))
                }));
            }
            results
        });
        for (result, partial) in results.into_iter().zip(self.partials.iter_mut()) {
            let lines = result.map_err(|e| e.shift_lines(self.lines))?;
            self.out.append(partial);
            partial.clear();
            self.lines += lines;
        }
        let first_block = self.fed == 0;
        self.fed += block.len() as u64;
        if first_block {
            self.reserve_for_the_rest();
        }
        Ok(())
    }

    /// After the first block: reserve room for the rows expected in the whole input.
    fn reserve_for_the_rest(&mut self) {
        if let Some(total) = self.total
            && self.fed > 0
            && total > self.fed
            && !self.out.is_empty()
        {
            let per_row = self.fed as f64 / self.out.len() as f64;
            let expected = (total as f64 / per_row * 1.02) as usize + 64;
            let cap = usize::try_from(total).unwrap_or(usize::MAX);
            self.out
                .reserve(expected.min(cap).saturating_sub(self.out.len()));
        }
    }
}

/// `block` cut into up to `n` parts of about the same size, at line ends.
fn split_parts(block: &[u8], n: usize) -> Vec<&[u8]> {
    if n <= 1 || block.len() < MIN_SPLIT {
        return vec![block];
    }
    let mut parts = Vec::with_capacity(n);
    let mut rest = block;
    for remaining in (1..n).rev() {
        let target = rest.len() / (remaining + 1);
        let cut = rest
            .get(target..)
            .and_then(|tail| tail.iter().position(|&b| b == b'\n'))
            .map_or(rest.len(), |i| target + i + 1);
        let (part, tail) = rest.split_at(cut);
        parts.push(part);
        rest = tail;
    }
    parts.push(rest);
    parts
}

/// The index just past the line end at or after `at`, or the length.
fn line_end_after(bytes: &[u8], at: usize) -> usize {
    bytes
        .get(at..)
        .and_then(|tail| tail.iter().position(|&b| b == b'\n'))
        .map_or(bytes.len(), |i| at + i + 1)
}

/// Parses `body` (whole lines) block by block, reporting `offset` + bytes consumed.
fn load_slice<P: LineParser>(
    loader: &mut Loader<'_, P>,
    body: &[u8],
    offset: u64,
    progress: &dyn Fn(u64),
) -> Result<(), CaseloadError> {
    let block = loader.block_bytes();
    let mut done = 0;
    while done < body.len() {
        let end = line_end_after(body, done + block);
        loader.feed(body.get(done..end).unwrap_or_default())?;
        done = end;
        progress(offset + done as u64);
    }
    Ok(())
}

/// Reads from `reader` until `buf` holds `target` bytes or the input ends; returns whether it
/// ended.
fn fill(reader: &mut dyn Read, buf: &mut Vec<u8>, target: usize) -> io::Result<bool> {
    let want = target.saturating_sub(buf.len()) as u64;
    let got = (&mut *reader).take(want).read_to_end(buf)? as u64;
    Ok(got < want)
}

/// Parses what is left of `reader` (after `buf`, already read) block by block, reporting
/// `consumed` + bytes consumed.
fn load_reader<P: LineParser>(
    loader: &mut Loader<'_, P>,
    reader: &mut dyn Read,
    mut buf: Vec<u8>,
    mut eof: bool,
    mut consumed: u64,
    progress: &dyn Fn(u64),
) -> Result<(), CaseloadError> {
    let block = loader.block_bytes();
    loop {
        if !eof && buf.len() < block {
            eof = fill(reader, &mut buf, block)?;
        }
        if buf.is_empty() {
            return Ok(());
        }
        let cut = if eof {
            buf.len()
        } else {
            match buf.iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => {
                    // One line longer than a block: read on.
                    let target = buf.len() + block;
                    eof = fill(reader, &mut buf, target)?;
                    continue;
                }
            }
        };
        loader.feed(buf.get(..cut).unwrap_or_default())?;
        consumed += cut as u64;
        buf.drain(..cut);
        progress(consumed);
    }
}

// ---------------------------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------------------------

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// What ends a cell.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Comma,
    Line,
    Input,
}

/// A cell's contents (unquoted), what follows it, and what ended it.
type Cell<'a> = (Cow<'a, [u8]>, &'a [u8], End);

/// The next cell of `rest`: its contents (unquoted), what follows it, and what ended it. A
/// quoted cell may have blanks around its quotes.
fn next_cell(rest: &[u8]) -> Result<Cell<'_>, String> {
    let mut start = rest;
    while let Some((b' ' | b'\t', tail)) = start.split_first() {
        start = tail;
    }
    if let Some((b'"', body)) = start.split_first() {
        return quoted_cell(body);
    }
    let end = rest
        .iter()
        .position(|&b| b == b',' || b == b'\n')
        .unwrap_or(rest.len());
    let (cell, tail) = rest.split_at(end);
    Ok(match tail.split_first() {
        Some((b',', after)) => (Cow::Borrowed(cell), after, End::Comma),
        Some((_, after)) => (Cow::Borrowed(cell), after, End::Line),
        None => (Cow::Borrowed(cell), tail, End::Input),
    })
}

/// A quoted cell (RFC 4180: `""` is a quote), `body` starting after the opening quote. A
/// quoted cell does not span lines.
fn quoted_cell(body: &[u8]) -> Result<Cell<'_>, String> {
    let unterminated = || "a quoted cell has no closing quote on its line".to_owned();
    let mut owned: Option<Vec<u8>> = None;
    let mut segment = 0;
    let mut at = 0;
    loop {
        let found = body
            .get(at..)
            .and_then(|tail| tail.iter().position(|&b| b == b'"' || b == b'\n'))
            .map(|i| at + i)
            .ok_or_else(unterminated)?;
        if body.get(found) == Some(&b'\n') {
            return Err(unterminated());
        }
        if body.get(found + 1) == Some(&b'"') {
            owned
                .get_or_insert_with(Vec::new)
                .extend_from_slice(body.get(segment..=found).unwrap_or_default());
            segment = found + 2;
            at = found + 2;
            continue;
        }
        let last = body.get(segment..found).unwrap_or_default();
        let cell = match owned {
            Some(mut v) => {
                v.extend_from_slice(last);
                Cow::Owned(v)
            }
            None => Cow::Borrowed(last),
        };
        let mut after = body.get(found + 1..).unwrap_or_default();
        while let Some((b' ' | b'\t' | b'\r', t)) = after.split_first() {
            after = t;
        }
        return match after.split_first() {
            Some((b',', t)) => Ok((cell, t, End::Comma)),
            Some((b'\n', t)) => Ok((cell, t, End::Line)),
            None => Ok((cell, after, End::Input)),
            Some(_) => Err("unexpected text after a quoted cell".to_owned()),
        };
    }
}

/// Lookup tables from two ASCII letters to a country or language index.
struct Codes {
    countries: Vec<u16>,
    languages: Vec<u8>,
}

/// The table position of two ASCII letters, in any case.
fn letters(code: &[u8]) -> Option<usize> {
    match code {
        [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => Some(
            usize::from(a.to_ascii_uppercase() - b'A') * 26
                + usize::from(b.to_ascii_uppercase() - b'A'),
        ),
        _ => None,
    }
}

impl Codes {
    fn new() -> Self {
        let mut countries = vec![UNKNOWN_COUNTRY; 26 * 26];
        for (i, code) in Country::ALL.iter().enumerate() {
            if let (Some(at), Ok(i)) = (letters(code.as_bytes()), u16::try_from(i))
                && let Some(entry) = countries.get_mut(at)
            {
                *entry = i;
            }
        }
        let mut languages = vec![u8::MAX; 26 * 26];
        for (i, code) in Language::ALL.iter().enumerate() {
            if let (Some(at), Ok(i)) = (letters(code.as_bytes()), u8::try_from(i))
                && let Some(entry) = languages.get_mut(at)
            {
                *entry = i;
            }
        }
        Codes {
            countries,
            languages,
        }
    }

    fn country(&self, code: &[u8]) -> Option<u16> {
        let i = *self.countries.get(letters(code)?)?;
        (i != UNKNOWN_COUNTRY).then_some(i)
    }

    fn language(&self, code: &[u8]) -> Option<u8> {
        let i = *self.languages.get(letters(code)?)?;
        (i != u8::MAX).then_some(i)
    }
}

/// The index of `text` among `values`.
fn enum_index(values: &[&str], text: &[u8]) -> Option<u8> {
    values
        .iter()
        .position(|v| v.as_bytes() == text)
        .and_then(|i| u8::try_from(i).ok())
}

/// Exactly `YYYY-MM-DD`, as days since 1970-01-01.
fn fast_date(text: &[u8]) -> Option<i32> {
    fn digit(b: u8) -> Option<i32> {
        b.is_ascii_digit().then(|| i32::from(b - b'0'))
    }
    match *text {
        [y1, y2, y3, y4, b'-', m1, m2, b'-', d1, d2] => {
            let year = digit(y1)? * 1000 + digit(y2)? * 100 + digit(y3)? * 10 + digit(y4)?;
            let month = u8::try_from(digit(m1)? * 10 + digit(m2)?).ok()?;
            let day = u8::try_from(digit(d1)? * 10 + digit(d2)?).ok()?;
            let month = time::Month::try_from(month).ok()?;
            Date::from_calendar_date(year, month, day)
                .ok()
                .map(date_to_days)
        }
        _ => None,
    }
}

/// Pushes `value` if there is one; returns whether there was.
fn push_some<T>(column: &mut Vec<T>, value: Option<T>) -> bool {
    match value {
        Some(value) => {
            column.push(value);
            true
        }
        None => false,
    }
}

/// The items of a `;`-separated list, trimmed, empty ones skipped.
fn list_items(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|&b| b == b';')
        .map(<[u8]>::trim_ascii)
        .filter(|item| !item.is_empty())
}

/// One column of a CSV file.
struct CsvColumn {
    fact: Fact,
    slot: usize,
    values: &'static [&'static str],
}

/// A CSV body parser for one header.
struct CsvParser {
    columns: Vec<CsvColumn>,
    /// Slots of the facts that have no column.
    missing: Vec<usize>,
    codes: Codes,
}

impl CsvParser {
    /// From the header line (without its line end).
    fn from_header(line: &[u8]) -> Result<Self, CaseloadError> {
        let mut columns: Vec<CsvColumn> = Vec::new();
        let mut rest = line;
        loop {
            let column = columns.len() + 1;
            let (cell, after, end) =
                next_cell(rest).map_err(|message| CaseloadError::Row { line: 1, message })?;
            let name = std::str::from_utf8(&cell).map_err(|_| CaseloadError::Row {
                line: 1,
                message: format!("column {column}: the fact name is not valid UTF-8"),
            })?;
            let fact: Fact = name
                .trim()
                .parse()
                .map_err(|error| CaseloadError::UnknownColumn { column, error })?;
            if let Some(first) = columns.iter().position(|c| c.fact == fact) {
                return Err(CaseloadError::DuplicateColumn {
                    fact,
                    first: first + 1,
                    second: column,
                });
            }
            columns.push(CsvColumn {
                fact,
                slot: slot(fact),
                values: fact.fact_type().values(),
            });
            rest = after;
            if end != End::Comma {
                break;
            }
        }
        let missing = Fact::ALL
            .iter()
            .filter(|f| !columns.iter().any(|c| c.fact == **f))
            .map(|f| slot(*f))
            .collect();
        Ok(CsvParser {
            columns,
            missing,
            codes: Codes::new(),
        })
    }

    /// Parses one cell into its column.
    fn cell(&self, column: &CsvColumn, raw: &[u8], data: &mut Data) -> Result<(), CellProblem> {
        let text = raw.trim_ascii();
        if text.is_empty() {
            data.push_unknown();
            return Ok(());
        }
        // Canonical forms without allocating; anything else through refuge-core's parser,
        // which accepts the same forms (and others) and explains what is wrong.
        let fast = match data {
            Data::Enum(v) => push_some(v, enum_index(column.values, text)),
            Data::Bool(v) => push_some(
                v,
                match text {
                    b"true" => Some(1),
                    b"false" => Some(0),
                    _ => None,
                },
            ),
            Data::Country(v) => push_some(v, self.codes.country(text)),
            Data::Date(v) => push_some(v, fast_date(text)),
            Data::Set(v) => push_some(
                v,
                list_items(text).try_fold(0u32, |bits, item| {
                    enum_index(column.values, item).map(|i| bits | (1 << i))
                }),
            ),
            Data::Languages(w) => {
                let words = list_items(text).try_fold([0u64; LANGUAGE_WORDS], |mut words, item| {
                    let i = usize::from(self.codes.language(item)?);
                    *words.get_mut(i / 64)? |= 1 << (i % 64);
                    Some(words)
                });
                match words {
                    Some(words) => {
                        push_words(w, words);
                        true
                    }
                    None => false,
                }
            }
        };
        if fast {
            return Ok(());
        }
        let text = std::str::from_utf8(raw).map_err(|_| CellProblem::NotUtf8)?;
        let value = FactValue::parse(column.fact, text).map_err(|e| e.problem)?;
        data.push_value(value);
        Ok(())
    }

    /// Parses one row from the start of `rest` into `out`; returns what follows its line.
    fn row<'a>(&self, rest: &'a [u8], out: &mut Caseload) -> Result<&'a [u8], CaseloadError> {
        let n = self.columns.len();
        let mut rest = rest;
        for (j, column) in self.columns.iter().enumerate() {
            let (cell, after, end) =
                next_cell(rest).map_err(|message| CaseloadError::Row { line: 0, message })?;
            self.cell(column, &cell, &mut out.columns[column.slot])
                .map_err(|problem| CaseloadError::Cell {
                    line: 0,
                    fact: column.fact,
                    problem,
                })?;
            rest = after;
            let last = j + 1 == n;
            match (end, last) {
                (End::Comma, false) | (End::Line | End::Input, true) => {}
                (End::Comma, true) => {
                    let line = rest.get(..line_end_after(rest, 0)).unwrap_or_default();
                    let more = line.iter().filter(|&&b| b == b',').count() + 1;
                    return Err(CaseloadError::Row {
                        line: 0,
                        message: format!(
                            "expected {n} cells, as in the header; found {}",
                            n + more
                        ),
                    });
                }
                (End::Line | End::Input, false) => {
                    return Err(CaseloadError::Row {
                        line: 0,
                        message: format!("expected {n} cells, as in the header; found {}", j + 1),
                    });
                }
            }
        }
        for slot in &self.missing {
            out.columns[*slot].push_unknown();
        }
        out.len += 1;
        Ok(rest)
    }
}

impl LineParser for CsvParser {
    fn parse(&self, part: &[u8], out: &mut Caseload) -> Result<u64, CaseloadError> {
        let mut rest = part;
        let mut line = 0u64;
        let skip_blank = self.columns.len() > 1;
        while !rest.is_empty() {
            line += 1;
            if skip_blank {
                if let Some(after) = rest.strip_prefix(b"\n") {
                    rest = after;
                    continue;
                }
                if let Some(after) = rest.strip_prefix(b"\r\n") {
                    rest = after;
                    continue;
                }
            }
            rest = self.row(rest, out).map_err(|e| e.shift_lines(line))?;
        }
        Ok(line)
    }
}

/// `bytes` without a UTF-8 byte-order mark.
fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(BOM).unwrap_or(bytes)
}

// ---------------------------------------------------------------------------------------------
// JSON Lines
// ---------------------------------------------------------------------------------------------

/// A JSON Lines parser: one facts object per line; blank lines are skipped.
struct JsonParser;

impl LineParser for JsonParser {
    fn parse(&self, part: &[u8], out: &mut Caseload) -> Result<u64, CaseloadError> {
        let mut rest = part;
        let mut line = 0u64;
        while !rest.is_empty() {
            line += 1;
            let end = line_end_after(rest, 0);
            let (text, after) = rest.split_at(end);
            rest = after;
            if text.trim_ascii().is_empty() {
                continue;
            }
            let facts: Facts = serde_json::from_slice(text).map_err(|e| {
                let message = e.to_string();
                let suffix = format!(" at line {} column {}", e.line(), e.column());
                CaseloadError::Json {
                    line,
                    column: e.column(),
                    message: message.strip_suffix(&suffix).unwrap_or(&message).to_owned(),
                }
            })?;
            out.push(&facts);
        }
        Ok(line)
    }
}

// ---------------------------------------------------------------------------------------------
// Readers
// ---------------------------------------------------------------------------------------------

impl Caseload {
    /// Reads a CSV caseload from memory, on several threads. `progress` is called with the
    /// number of bytes consumed so far.
    pub fn from_csv_bytes(bytes: &[u8], progress: &dyn Fn(u64)) -> Result<Caseload, CaseloadError> {
        let text = strip_bom(bytes);
        if text.is_empty() {
            return Err(CaseloadError::NoHeader);
        }
        let header_end = line_end_after(text, 0);
        let (header, body) = text.split_at(header_end);
        let header = header.strip_suffix(b"\n").unwrap_or(header);
        let parser = CsvParser::from_header(header)?;
        let mut loader = Loader::new(&parser, 1, Some(body.len() as u64));
        let offset = (bytes.len() - body.len()) as u64;
        progress(offset);
        load_slice(&mut loader, body, offset, progress)?;
        Ok(loader.out)
    }

    /// Reads a CSV caseload from `reader`, streaming (memory: the caseload and a few blocks of
    /// input). `size` (the input's length, if known) lets the reader reserve memory once.
    /// `progress` is called with the number of bytes consumed so far.
    pub fn read_csv<R: Read>(
        mut reader: R,
        size: Option<u64>,
        progress: &dyn Fn(u64),
    ) -> Result<Caseload, CaseloadError> {
        let reader: &mut dyn Read = &mut reader;
        let mut buf = Vec::new();
        let mut eof = false;
        let header_end = loop {
            if let Some(i) = buf.iter().position(|&b| b == b'\n') {
                break i + 1;
            }
            if eof {
                break buf.len();
            }
            let target = buf.len() + PART_BYTES;
            eof = fill(reader, &mut buf, target)?;
        };
        if eof && strip_bom(&buf).is_empty() {
            return Err(CaseloadError::NoHeader);
        }
        let header = strip_bom(buf.get(..header_end).unwrap_or_default());
        let header = header.strip_suffix(b"\n").unwrap_or(header);
        let parser = CsvParser::from_header(header)?;
        buf.drain(..header_end);
        let consumed = header_end as u64;
        let total = size.map(|s| s.saturating_sub(consumed));
        let mut loader = Loader::new(&parser, 1, total);
        progress(consumed);
        load_reader(&mut loader, reader, buf, eof, consumed, progress)?;
        Ok(loader.out)
    }

    /// Reads a JSON Lines caseload from memory, on several threads. `progress` is called with
    /// the number of bytes consumed so far.
    pub fn from_jsonl_bytes(
        bytes: &[u8],
        progress: &dyn Fn(u64),
    ) -> Result<Caseload, CaseloadError> {
        let mut loader = Loader::new(&JsonParser, 0, Some(bytes.len() as u64));
        load_slice(&mut loader, bytes, 0, progress)?;
        Ok(loader.out)
    }

    /// Reads a JSON Lines caseload from `reader`, streaming; as [`Caseload::read_csv`].
    pub fn read_jsonl<R: Read>(
        mut reader: R,
        size: Option<u64>,
        progress: &dyn Fn(u64),
    ) -> Result<Caseload, CaseloadError> {
        let mut loader = Loader::new(&JsonParser, 0, size);
        load_reader(&mut loader, &mut reader, Vec::new(), false, 0, progress)?;
        Ok(loader.out)
    }

    /// Reads a caseload file, in the format its extension names (`.csv`, `.jsonl`, `.rcl`).
    /// `progress` is called with the number of bytes consumed so far (out of the file's
    /// length). Errors name the file.
    pub fn from_path(path: &Path, progress: &dyn Fn(u64)) -> Result<Caseload, CaseloadError> {
        let read = || -> Result<Caseload, CaseloadError> {
            let format = CaseloadFormat::from_path(path)?;
            if format == CaseloadFormat::Binary {
                return Caseload::read_binary_file(path, progress);
            }
            let file = std::fs::File::open(path)?;
            let size = file.metadata().ok().map(|m| m.len());
            match format {
                CaseloadFormat::Csv => Caseload::read_csv(file, size, progress),
                _ => Caseload::read_jsonl(file, size, progress),
            }
        };
        read().map_err(|e| e.in_file(path))
    }
}

// ---------------------------------------------------------------------------------------------
// Writers
// ---------------------------------------------------------------------------------------------

/// Rows between two progress reports of a writer.
const PROGRESS_ROWS: usize = 1 << 16;
/// Bytes buffered by a writer before it writes.
const WRITE_BUFFER: usize = 1 << 20;

/// The CSV text of a known empty set: nothing, which reads back as unknown (CSV has no
/// distinct form for a known empty set yet; JSON Lines and `.rcl` keep the difference).
const EMPTY_SET_CELL: &[u8] = b"";

fn push_digits(buf: &mut Vec<u8>, value: u32, width: usize) {
    let mut digits = [b'0'; 10];
    let mut v = value;
    for d in digits.iter_mut().rev().take(width) {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    buf.extend_from_slice(digits.get(10 - width..).unwrap_or_default());
}

fn push_date(buf: &mut Vec<u8>, days: i32) {
    let Some(date) = days_to_date(days) else {
        return;
    };
    let (year, month, day) = date.to_calendar_date();
    match u32::try_from(year) {
        Ok(y) if y <= 9999 => push_digits(buf, y, 4),
        _ => buf.extend_from_slice(format!("{year:04}").as_bytes()),
    }
    buf.push(b'-');
    push_digits(buf, u32::from(u8::from(month)), 2);
    buf.push(b'-');
    push_digits(buf, u32::from(day), 2);
}

/// Writes the names of the bits set in `bits`, `;`-separated.
fn push_bits(buf: &mut Vec<u8>, mut bits: u64, base: usize, names: &[&str], first: &mut bool) {
    while bits != 0 {
        let i = base + bits.trailing_zeros() as usize;
        bits &= bits - 1;
        if let Some(name) = names.get(i) {
            if !*first {
                buf.push(b';');
            }
            *first = false;
            buf.extend_from_slice(name.as_bytes());
        }
    }
}

impl Caseload {
    /// Appends row `row`'s cell of column `column` (of `fact`) as CSV text.
    fn push_cell(buf: &mut Vec<u8>, fact: Fact, column: &Data, row: usize) {
        match column {
            Data::Country(v) => {
                if let Some(code) = v.get(row).and_then(|i| Country::ALL.get(usize::from(*i))) {
                    buf.extend_from_slice(code.as_bytes());
                }
            }
            Data::Date(v) => {
                if let Some(days) = v.get(row) {
                    push_date(buf, *days);
                }
            }
            Data::Bool(v) => match v.get(row) {
                Some(0) => buf.extend_from_slice(b"false"),
                Some(1) => buf.extend_from_slice(b"true"),
                _ => {}
            },
            Data::Enum(v) => {
                if let Some(name) = v
                    .get(row)
                    .and_then(|i| fact.fact_type().values().get(usize::from(*i)))
                {
                    buf.extend_from_slice(name.as_bytes());
                }
            }
            Data::Set(v) => match v.get(row) {
                Some(&UNKNOWN_SET) | None => {}
                Some(0) => buf.extend_from_slice(EMPTY_SET_CELL),
                Some(bits) => {
                    let names = fact.fact_type().values();
                    push_bits(buf, u64::from(*bits), 0, names, &mut true);
                }
            },
            Data::Languages(w) => {
                if let Some(set) = LanguageColumn::of(w).get(row) {
                    if set.is_empty() {
                        buf.extend_from_slice(EMPTY_SET_CELL);
                    }
                    let mut first = true;
                    for (i, word) in set.words().into_iter().enumerate() {
                        push_bits(buf, word, i * 64, Language::ALL, &mut first);
                    }
                }
            }
        }
    }

    /// Writes the caseload as CSV: a header of all fact names, then one line per person
    /// (unknown: an empty cell; a known empty set is also written empty, as CSV has no form for
    /// it). `progress` is called with the number of rows written so far.
    pub fn write_csv<W: Write>(&self, mut writer: W, progress: &dyn Fn(u64)) -> io::Result<()> {
        let mut buf = Vec::with_capacity(WRITE_BUFFER + 4096);
        buf.extend_from_slice(Fact::NAMES.join(",").as_bytes());
        buf.push(b'\n');
        for row in 0..self.len {
            for (i, (column, fact)) in self.columns.iter().zip(Fact::ALL).enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                Self::push_cell(&mut buf, *fact, column, row);
            }
            buf.push(b'\n');
            if buf.len() >= WRITE_BUFFER {
                writer.write_all(&buf)?;
                buf.clear();
            }
            if row % PROGRESS_ROWS == 0 {
                progress(row as u64);
            }
        }
        writer.write_all(&buf)?;
        writer.flush()?;
        progress(self.len as u64);
        Ok(())
    }

    /// Writes the caseload as JSON Lines: one facts object per person, holding the known facts.
    /// `progress` is called with the number of rows written so far.
    pub fn write_jsonl<W: Write>(&self, mut writer: W, progress: &dyn Fn(u64)) -> io::Result<()> {
        let mut buf = Vec::with_capacity(WRITE_BUFFER + 4096);
        for row in 0..self.len {
            if let Some(facts) = self.row(row) {
                serde_json::to_writer(&mut buf, &facts).map_err(io::Error::from)?;
            }
            buf.push(b'\n');
            if buf.len() >= WRITE_BUFFER {
                writer.write_all(&buf)?;
                buf.clear();
            }
            if row % PROGRESS_ROWS == 0 {
                progress(row as u64);
            }
        }
        writer.write_all(&buf)?;
        writer.flush()?;
        progress(self.len as u64);
        Ok(())
    }

    /// Writes the caseload in `format`. `progress` is called with the number of rows written
    /// so far.
    pub fn write_as<W: Write>(
        &self,
        format: CaseloadFormat,
        writer: W,
        progress: &dyn Fn(u64),
    ) -> io::Result<()> {
        match format {
            CaseloadFormat::Csv => self.write_csv(writer, progress),
            CaseloadFormat::JsonLines => self.write_jsonl(writer, progress),
            CaseloadFormat::Binary => self.write_binary(writer, progress),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The binary format (.rcl)
// ---------------------------------------------------------------------------------------------

/// The first bytes of a `.rcl` file.
pub const BINARY_MAGIC: &[u8; 8] = b"REFUGECL";
/// The version of the `.rcl` format this code writes and reads.
pub const BINARY_VERSION: u32 = 1;

/// The type tag and bytes per row of a fact type's column in a `.rcl` file.
fn binary_type(ty: FactType) -> (u8, usize) {
    match ty {
        FactType::Country => (1, 2),
        FactType::Date => (2, 4),
        FactType::Bool => (3, 1),
        FactType::Enum { .. } => (4, 1),
        FactType::EnumSet { .. } => (5, 4),
        FactType::LanguageSet => (6, 8 * LANGUAGE_WORDS),
    }
}

/// Writes `items` as little-endian bytes through a buffer.
fn write_le<T: Copy, const N: usize>(
    writer: &mut dyn Write,
    items: &[T],
    to_bytes: impl Fn(T) -> [u8; N],
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(1 << 16);
    for chunk in items.chunks((1 << 16) / N.max(1)) {
        buf.clear();
        for item in chunk {
            buf.extend_from_slice(&to_bytes(*item));
        }
        writer.write_all(&buf)?;
    }
    Ok(())
}

fn binary_error(message: impl Into<String>) -> CaseloadError {
    CaseloadError::Binary(message.into())
}

/// An invalid value at `row` of `fact`'s column.
fn invalid(fact: Fact, row: usize, value: impl fmt::Display, expected: &str) -> CaseloadError {
    binary_error(format!(
        "row {}, column \"{fact}\": invalid value {value} (expected {expected})",
        row + 1
    ))
}

/// `bytes` as little-endian values of `N` bytes.
fn from_le<T, const N: usize>(bytes: &[u8], convert: fn([u8; N]) -> T) -> Vec<T> {
    let mut out = Vec::with_capacity(bytes.len() / N);
    out.extend(bytes.chunks_exact(N).map(|chunk| {
        let mut word = [0u8; N];
        word.copy_from_slice(chunk);
        convert(word)
    }));
    out
}

/// The first row where `bad` holds, if any (checked without branching, then searched).
fn first_bad<T: Copy>(values: &[T], bad: impl Fn(T) -> bool) -> Option<usize> {
    if values.iter().fold(false, |any, v| any | bad(*v)) {
        values.iter().position(|v| bad(*v))
    } else {
        None
    }
}

/// Checks a one-byte column (enum or bool) read from a file.
fn check_bytes(fact: Fact, bytes: Vec<u8>) -> Result<Data, CaseloadError> {
    match fact.fact_type() {
        FactType::Enum { values } => {
            let n = u8::try_from(values.len()).unwrap_or(UNKNOWN_ENUM);
            if let Some(row) = first_bad(&bytes, |b| (b >= n) & (b != UNKNOWN_ENUM)) {
                let expected = format!("an index below {n}, or {UNKNOWN_ENUM} for unknown");
                return Err(invalid(fact, row, bytes[row], &expected));
            }
            Ok(Data::Enum(bytes))
        }
        _ => {
            if let Some(row) = first_bad(&bytes, |b| b > UNKNOWN_BOOL) {
                return Err(invalid(fact, row, bytes[row], "0, 1, or 2 for unknown"));
            }
            Ok(Data::Bool(bytes))
        }
    }
}

/// Checks a language column: bits past the last language only as the unknown marker, alone.
fn check_languages(fact: Fact, planes: [Vec<u64>; LANGUAGE_WORDS]) -> Result<Data, CaseloadError> {
    let last_mask = last_language_word_mask();
    let [a, b, c] = &planes;
    let bad = |(x, y, z): (u64, u64, u64)| {
        (z & !last_mask != 0) & !((z == UNKNOWN_LANGUAGES) & (x | y == 0))
    };
    let rows_of = || a.iter().zip(b).zip(c).map(|((x, y), z)| (*x, *y, *z));
    if rows_of().fold(false, |any, r| any | bad(r))
        && let Some(row) = rows_of().position(bad)
    {
        let z = c.get(row).copied().unwrap_or_default();
        return Err(invalid(
            fact,
            row,
            format!("{z:#x} in the last word"),
            "language bits only, or the unknown marker alone",
        ));
    }
    Ok(Data::Languages(planes))
}

/// Decodes and checks a column of `rows` rows of several bytes each.
fn decode_column(fact: Fact, bytes: &[u8], rows: usize) -> Result<Data, CaseloadError> {
    Ok(match fact.fact_type() {
        FactType::Country => {
            let v = from_le(bytes, u16::from_le_bytes);
            let n = u16::try_from(Country::ALL.len()).unwrap_or(UNKNOWN_COUNTRY);
            if let Some(row) = first_bad(&v, |c| (c >= n) & (c != UNKNOWN_COUNTRY)) {
                let expected = format!("a country index below {n}, or {UNKNOWN_COUNTRY}");
                return Err(invalid(fact, row, v[row], &expected));
            }
            Data::Country(v)
        }
        FactType::Date => {
            let v = from_le(bytes, i32::from_le_bytes);
            let (lo, hi) = (date_to_days(Date::MIN), date_to_days(Date::MAX));
            if let Some(row) = first_bad(&v, |d| ((d < lo) | (d > hi)) & (d != UNKNOWN_DATE)) {
                return Err(invalid(fact, row, v[row], "days since 1970-01-01"));
            }
            Data::Date(v)
        }
        FactType::EnumSet { values } => {
            let v = from_le(bytes, u32::from_le_bytes);
            let mask = set_mask(values.len());
            if let Some(row) = first_bad(&v, |b| (b & !mask != 0) & (b != UNKNOWN_SET)) {
                let expected = format!("a bitmask within {mask:#x}, or {UNKNOWN_SET:#x}");
                return Err(invalid(fact, row, format!("{:#x}", v[row]), &expected));
            }
            Data::Set(v)
        }
        FactType::LanguageSet => {
            let plane = rows * 8;
            let mut planes: [Vec<u64>; LANGUAGE_WORDS] = Default::default();
            for (i, column) in planes.iter_mut().enumerate() {
                let part = bytes.get(i * plane..(i + 1) * plane).unwrap_or_default();
                *column = from_le(part, u64::from_le_bytes);
            }
            check_languages(fact, planes)?
        }
        FactType::Enum { .. } | FactType::Bool => check_bytes(fact, bytes.to_vec())?,
    })
}

impl Caseload {
    /// Writes the caseload in the binary format (`.rcl`, docs/caseloads.md): magic, version,
    /// column count, row count, a directory of columns (fact name, type tag, bytes per row),
    /// then each column as raw little-endian bytes. `progress` is called with the number of
    /// rows written (once per column, as the whole caseload).
    pub fn write_binary<W: Write>(&self, mut writer: W, progress: &dyn Fn(u64)) -> io::Result<()> {
        let w: &mut dyn Write = &mut writer;
        let mut header = Vec::with_capacity(1024);
        header.extend_from_slice(BINARY_MAGIC);
        header.extend_from_slice(&BINARY_VERSION.to_le_bytes());
        header.extend_from_slice(&(FACTS as u32).to_le_bytes());
        header.extend_from_slice(&(self.len as u64).to_le_bytes());
        for fact in Fact::ALL {
            let name = fact.name().as_bytes();
            let (tag, width) = binary_type(fact.fact_type());
            header.push(name.len() as u8);
            header.extend_from_slice(name);
            header.push(tag);
            header.push(width as u8);
        }
        w.write_all(&header)?;
        for (i, column) in self.columns.iter().enumerate() {
            match column {
                Data::Bool(v) | Data::Enum(v) => w.write_all(v)?,
                Data::Country(v) => write_le(w, v, u16::to_le_bytes)?,
                Data::Date(v) => write_le(w, v, i32::to_le_bytes)?,
                Data::Set(v) => write_le(w, v, u32::to_le_bytes)?,
                Data::Languages(planes) => {
                    for plane in planes {
                        write_le(w, plane, u64::to_le_bytes)?;
                    }
                }
            }
            progress((self.len * (i + 1) / FACTS) as u64);
        }
        w.flush()
    }

    /// Reads a caseload in the binary format (`.rcl`), checking everything: magic, version,
    /// directory, lengths, and every value (enum indexes, country indexes, set bits, dates in
    /// range). Facts the file has no column for are unknown. `progress` is called with the
    /// number of bytes consumed so far.
    pub fn read_binary<R: Read>(
        mut reader: R,
        progress: &dyn Fn(u64),
    ) -> Result<Caseload, CaseloadError> {
        let r: &mut dyn Read = &mut reader;
        let head = BinaryHead::read(r)?;
        let mut consumed = head.len;
        let mut columns = Vec::with_capacity(head.directory.len());
        let mut scratch = Vec::new();
        for (fact, width) in &head.directory {
            columns.push((
                *fact,
                read_column(r, *fact, *width, head.rows, &mut scratch)?,
            ));
            consumed += (head.rows * width) as u64;
            progress(consumed);
        }
        let mut extra = [0u8; 1];
        if r.read(&mut extra)? != 0 {
            return Err(binary_error("there are bytes after the last column"));
        }
        Ok(head.caseload(columns))
    }

    /// Reads a binary (`.rcl`) file, on two threads (each reading about half of the columns
    /// through its own handle on the file); as [`Caseload::read_binary`].
    fn read_binary_file(path: &Path, progress: &dyn Fn(u64)) -> Result<Caseload, CaseloadError> {
        let mut file = std::fs::File::open(path)?;
        let size = file.metadata()?.len();
        let head = BinaryHead::read(&mut file)?;
        let widths: Vec<u64> = head
            .directory
            .iter()
            .map(|(_, width)| (head.rows as u64).saturating_mul(*width as u64))
            .collect();
        let body: u64 = widths.iter().fold(0u64, |sum, w| sum.saturating_add(*w));
        if head.len.checked_add(body) != Some(size) || head.directory.len() < 2 {
            // Damaged, or too small to bother: the sequential reader says what is wrong.
            file.seek(io::SeekFrom::Start(0))?;
            return Caseload::read_binary(file, progress);
        }
        // Split the columns where half of the bytes have been read.
        let mut split = 0;
        let mut before = 0u64;
        while split < widths.len() && before < body / 2 {
            before += widths.get(split).copied().unwrap_or_default();
            split += 1;
        }
        let (first, second) = head.directory.split_at(split);
        let rows = head.rows;
        let read_part = |mut file: std::fs::File, part: &[(Fact, usize)], report: &dyn Fn(u64)| {
            let mut scratch = Vec::new();
            let mut done = Vec::with_capacity(part.len());
            let mut consumed = 0;
            for (fact, width) in part {
                done.push((
                    *fact,
                    read_column(&mut file, *fact, *width, rows, &mut scratch)?,
                ));
                consumed += (rows * width) as u64;
                report(consumed);
            }
            Ok::<_, CaseloadError>(done)
        };
        let mut second_file = std::fs::File::open(path)?;
        second_file.seek(io::SeekFrom::Start(head.len + before))?;
        let (columns, rest) = std::thread::scope(|scope| {
            let other = scope.spawn(|| read_part(second_file, second, &|_| {}));
            let mine = read_part(file, first, &|n| progress(head.len + n));
            let theirs = other.join().unwrap_or_else(|_| {
                Err(CaseloadError::Io(io::Error::other(
                    "a reading thread failed",
                )))
            });
            (mine, theirs)
        });
        let columns = match (columns, rest) {
            (Ok(mut columns), Ok(rest)) => {
                columns.extend(rest);
                columns
            }
            (Err(e), _) | (_, Err(e)) => return Err(e),
        };
        progress(size);
        Ok(head.caseload(columns))
    }

    /// Reads a binary (`.rcl`) caseload from memory; as [`Caseload::read_binary`].
    pub fn from_binary_bytes(bytes: &[u8]) -> Result<Caseload, CaseloadError> {
        Caseload::read_binary(bytes, &|_| {})
    }
}

/// The header and directory of a `.rcl` file.
struct BinaryHead {
    rows: usize,
    /// Each column's fact and bytes a row, in file order.
    directory: Vec<(Fact, usize)>,
    /// The header's length in bytes.
    len: u64,
}

impl BinaryHead {
    fn read(r: &mut dyn Read) -> Result<Self, CaseloadError> {
        let mut head = [0u8; 24];
        read_exactly(r, &mut head, "the header")?;
        let (magic, rest) = head.split_at(8);
        if magic != BINARY_MAGIC {
            return Err(binary_error(
                "it does not start with the magic bytes \"REFUGECL\"",
            ));
        }
        let field = |at: usize, n: usize| rest.get(at..at + n).unwrap_or_default();
        let version = u32::from_le_bytes(field(0, 4).try_into().unwrap_or_default());
        if version != BINARY_VERSION {
            return Err(binary_error(format!(
                "format version {version} is not supported (this refuge reads version {BINARY_VERSION})"
            )));
        }
        let ncols = u32::from_le_bytes(field(4, 4).try_into().unwrap_or_default());
        if ncols > 1024 {
            return Err(binary_error(format!("{ncols} columns is implausible")));
        }
        let rows = u64::from_le_bytes(field(8, 8).try_into().unwrap_or_default());
        let too_many = || binary_error(format!("{rows} rows is more than this machine can hold"));
        let rows = usize::try_from(rows).map_err(|_| too_many())?;
        let mut len = head.len() as u64;
        let mut directory: Vec<(Fact, usize)> = Vec::new();
        for column in 1..=ncols {
            let mut name_len = [0u8; 1];
            read_exactly(r, &mut name_len, "the column directory")?;
            let mut name = vec![0u8; usize::from(name_len[0])];
            read_exactly(r, &mut name, "the column directory")?;
            let mut tag = [0u8; 2];
            read_exactly(r, &mut tag, "the column directory")?;
            len += 3 + name.len() as u64;
            let name = String::from_utf8_lossy(&name);
            let fact: Fact = name.parse().map_err(|e: UnknownFact| {
                binary_error(format!(
                    "column {column}: {e} (was the file written by a newer refuge?)"
                ))
            })?;
            let (want_tag, width) = binary_type(fact.fact_type());
            if tag != [want_tag, width as u8] {
                return Err(binary_error(format!(
                    "column \"{fact}\": type tag {} with {} bytes a row; expected tag {want_tag} with {width}",
                    tag[0], tag[1]
                )));
            }
            if directory.iter().any(|(f, _)| *f == fact) {
                return Err(binary_error(format!("column \"{fact}\" is given twice")));
            }
            rows.checked_mul(width).ok_or_else(too_many)?;
            directory.push((fact, width));
        }
        Ok(BinaryHead {
            rows,
            directory,
            len,
        })
    }

    /// The caseload of these columns; facts without one are unknown.
    fn caseload(&self, columns: Vec<(Fact, Data)>) -> Caseload {
        let mut caseload = Caseload::new();
        let mut present = [false; FACTS];
        for (fact, data) in columns {
            caseload.columns[slot(fact)] = data;
            present[slot(fact)] = true;
        }
        for (i, fact) in Fact::ALL.iter().enumerate() {
            if !present[i] {
                caseload.columns[i] = Data::unknown(fact.fact_type(), self.rows);
            }
        }
        caseload.len = self.rows;
        caseload
    }
}

/// Reads and checks one column of `rows` rows of `width` bytes (`scratch`: a buffer to reuse).
fn read_column(
    r: &mut dyn Read,
    fact: Fact,
    width: usize,
    rows: usize,
    scratch: &mut Vec<u8>,
) -> Result<Data, CaseloadError> {
    let total = rows.saturating_mul(width);
    // Read what is there rather than trusting the header with an allocation.
    let mut read = |buf: &mut Vec<u8>, n: usize, before: usize| {
        buf.clear();
        buf.reserve(n.min(64 << 20));
        (&mut *r).take(n as u64).read_to_end(buf)?;
        if buf.len() == n {
            Ok(())
        } else {
            Err(binary_error(format!(
                "the file is truncated: column \"{fact}\" has {} of its {total} bytes",
                before + buf.len()
            )))
        }
    };
    match fact.fact_type() {
        FactType::Enum { .. } | FactType::Bool => {
            let mut bytes = Vec::new();
            read(&mut bytes, total, 0)?;
            check_bytes(fact, bytes)
        }
        FactType::LanguageSet => {
            // Plane by plane, so that the scratch buffer stays a third of the column.
            let plane = rows.saturating_mul(8);
            let mut planes: [Vec<u64>; LANGUAGE_WORDS] = Default::default();
            for (i, column) in planes.iter_mut().enumerate() {
                read(scratch, plane, i * plane)?;
                *column = from_le(scratch, u64::from_le_bytes);
            }
            check_languages(fact, planes)
        }
        _ => {
            read(scratch, total, 0)?;
            decode_column(fact, scratch, rows)
        }
    }
}

/// Fills `buf` from `reader`; a short read is a truncated file.
fn read_exactly(reader: &mut dyn Read, buf: &mut [u8], what: &str) -> Result<(), CaseloadError> {
    reader.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            binary_error(format!("the file is truncated in {what}"))
        } else {
            CaseloadError::Io(e)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use refuge_core::facts::{DocumentKind, EnumSet, ObjectionGround, Refusal, Sex};

    fn facts(json: &str) -> Facts {
        serde_json::from_str(json).unwrap()
    }

    /// Every fact known.
    const FULL: &str = r#"{
        "nationality": "RU", "birth_date": "1990-01-31", "sex": "male",
        "profession": "military_technical", "service_status": "reservist",
        "refusal": "evaded_callup", "refusal_stage": "as_reservist", "summons_received": true,
        "forced_contract": false, "objection_grounds": ["conscience", "political"],
        "left_origin_on": "2022-09-25", "current_country": "GE", "stay_status": "visa_free",
        "stay_expires_on": "2025-03-01",
        "documents": ["internal_passport", "international_passport", "summons"],
        "prosecution": "wanted", "protest_record": true, "deportation_order": "to_third_country",
        "deportation_destination": "HR", "referred_by_ngo": false,
        "protection_status": "humanitarian_visa", "exclusion_indicator": false,
        "sanctions_listed": false, "languages": ["ru", "en", "zu", "aa"]
    }"#;

    /// Some facts known, of every type, including the extremes of each encoding.
    const SOME: &str = r#"{
        "nationality": "ZW", "birth_date": "0001-01-01", "sex": "other",
        "protection_status": "moratorium", "objection_grounds": ["international_law"],
        "stay_expires_on": "9999-12-31", "documents": ["protest_record"],
        "current_country": "AD", "summons_received": false, "languages": ["uk"]
    }"#;

    fn sample() -> Vec<Facts> {
        vec![
            facts(FULL),
            Facts::default(),
            facts(SOME),
            facts(r#"{"nationality": "BY", "refusal": "deserted", "languages": ["be", "ru"]}"#),
        ]
    }

    /// With known empty sets, which CSV cannot carry.
    fn with_empty_sets() -> Vec<Facts> {
        let mut rows = sample();
        rows.push(facts(
            r#"{"objection_grounds": [], "documents": [], "languages": [], "sex": "female"}"#,
        ));
        rows
    }

    fn csv(caseload: &Caseload) -> String {
        let mut out = Vec::new();
        caseload.write_csv(&mut out, &|_| {}).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn parse_csv(text: &str) -> Result<Caseload, CaseloadError> {
        let from_bytes = Caseload::from_csv_bytes(text.as_bytes(), &|_| {});
        let streamed = Caseload::read_csv(text.as_bytes(), None, &|_| {});
        match (&from_bytes, &streamed) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "bytes and stream agree"),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            _ => panic!("bytes {from_bytes:?} and stream {streamed:?} disagree"),
        }
        from_bytes
    }

    fn csv_error(text: &str) -> String {
        parse_csv(text).unwrap_err().to_string()
    }

    #[test]
    fn push_get_row_and_columns() {
        let rows = sample();
        let caseload: Caseload = rows.iter().collect();
        assert_eq!(caseload.len(), 4);
        for (i, facts) in rows.iter().enumerate() {
            assert_eq!(caseload.row(i).as_ref(), Some(facts));
            for fact in Fact::ALL {
                assert_eq!(caseload.get(i, *fact), facts.get(*fact), "{i} {fact}");
            }
        }
        assert_eq!(caseload.row(4), None);
        assert_eq!(caseload.get(4, Fact::Sex), None);
        assert_eq!(
            caseload.enums(Fact::Sex),
            &[1, UNKNOWN_ENUM, 2, UNKNOWN_ENUM]
        );
        assert_eq!(caseload.enums(Fact::Refusal)[3], Refusal::Deserted.index());
        assert_eq!(caseload.bools(Fact::SummonsReceived), &[1, 2, 0, 2]);
        assert_eq!(
            caseload.countries(Fact::Nationality)[0],
            Country::RU.index()
        );
        assert_eq!(caseload.countries(Fact::Nationality)[1], UNKNOWN_COUNTRY);
        assert_eq!(
            caseload.dates(Fact::BirthDate)[0],
            date_to_days(time::macros::date!(1990 - 01 - 31))
        );
        assert_eq!(caseload.dates(Fact::BirthDate)[1], UNKNOWN_DATE);
        assert_eq!(caseload.dates(Fact::LeftOriginOn)[0], 19260);
        let grounds: EnumSet<ObjectionGround> =
            [ObjectionGround::Conscience, ObjectionGround::Political]
                .into_iter()
                .collect();
        assert_eq!(caseload.sets(Fact::ObjectionGrounds)[0], grounds.bits());
        assert_eq!(caseload.sets(Fact::ObjectionGrounds)[1], UNKNOWN_SET);
        assert_eq!(caseload.speaks(0, Language::EN), Some(true));
        assert_eq!(caseload.speaks(0, Language::UK), Some(false));
        assert_eq!(caseload.speaks(1, Language::EN), None);
        assert_eq!(caseload.speaks(9, Language::EN), None);
        assert_eq!(caseload.known(Fact::Nationality), 3);
        assert_eq!(caseload.known(Fact::Languages), 3);
        assert_eq!(caseload.known(Fact::Prosecution), 1);
        // Wrong-typed accessors are empty, not a panic.
        assert!(caseload.enums(Fact::BirthDate).is_empty());
        assert!(caseload.dates(Fact::Sex).is_empty());
        for fact in Fact::ALL {
            let column = caseload.column(*fact);
            assert_eq!(column.len(), 4);
            for (row, facts) in rows.iter().enumerate() {
                assert_eq!(column.is_known(row), facts.is_known(*fact), "{fact} {row}");
            }
            assert!(!column.is_known(4));
        }
        assert!(caseload.heap_bytes() >= 4 * 65);
        let mut twice = caseload.clone();
        twice.append(&caseload);
        assert_eq!(twice.len(), 8);
        assert_eq!(twice.row(6), caseload.row(2));
        twice.clear();
        assert!(twice.is_empty());
        assert_eq!(twice, Caseload::new());
    }

    #[test]
    fn csv_round_trip() {
        let caseload: Caseload = sample().iter().collect();
        let text = csv(&caseload);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(Fact::NAMES.join(",").as_str()));
        assert_eq!(
            lines.next(),
            Some(
                "RU,1990-01-31,male,military_technical,reservist,evaded_callup,as_reservist,true,\
                 false,conscience;political,2022-09-25,GE,visa_free,2025-03-01,\
                 internal_passport;international_passport;summons,wanted,true,to_third_country,\
                 HR,false,humanitarian_visa,false,false,aa;en;ru;zu"
            )
        );
        assert_eq!(lines.next(), Some(",".repeat(FACTS - 1).as_str()));
        let back = parse_csv(&text).unwrap();
        assert_eq!(back, caseload);
        assert_eq!(csv(&back), text);
    }

    #[test]
    fn csv_cannot_carry_a_known_empty_set() {
        let caseload: Caseload = with_empty_sets().iter().collect();
        let back = parse_csv(&csv(&caseload)).unwrap();
        let last = back.row(4).unwrap();
        assert_eq!(last.objection_grounds, None);
        assert_eq!(last.documents, None);
        assert_eq!(last.languages, None);
        assert_eq!(last.sex, Some(Sex::Female));
        for row in 0..4 {
            assert_eq!(back.row(row), caseload.row(row));
        }
    }

    #[test]
    fn jsonl_and_binary_round_trip_with_known_empty_sets() {
        let caseload: Caseload = with_empty_sets().iter().collect();
        let mut jsonl = Vec::new();
        caseload.write_jsonl(&mut jsonl, &|_| {}).unwrap();
        let text = String::from_utf8(jsonl.clone()).unwrap();
        assert_eq!(text.lines().nth(1), Some("{}"));
        assert_eq!(
            text.lines().nth(4),
            Some(r#"{"sex":"female","objection_grounds":[],"documents":[],"languages":[]}"#)
        );
        assert_eq!(
            Caseload::from_jsonl_bytes(&jsonl, &|_| {}).unwrap(),
            caseload
        );
        assert_eq!(
            Caseload::read_jsonl(&jsonl[..], None, &|_| {}).unwrap(),
            caseload
        );

        let mut rcl = Vec::new();
        caseload.write_binary(&mut rcl, &|_| {}).unwrap();
        let back = Caseload::from_binary_bytes(&rcl).unwrap();
        assert_eq!(back, caseload);
        assert_eq!(back.row(4).unwrap().languages, Some(LanguageSet::new()));
        assert_eq!(
            back.row(4).unwrap().documents,
            Some(EnumSet::<DocumentKind>::new())
        );
    }

    #[test]
    fn every_format_round_trips_through_files() {
        let dir = tempfile::tempdir().unwrap();
        let caseload: Caseload = sample().iter().collect();
        for format in CaseloadFormat::ALL {
            let path = dir.path().join(format!("cases.{}", format.extension()));
            let mut file = std::fs::File::create(&path).unwrap();
            caseload.write_as(*format, &mut file, &|_| {}).unwrap();
            drop(file);
            let seen = std::cell::Cell::new(0);
            let back = Caseload::from_path(&path, &|n| seen.set(n)).unwrap();
            assert_eq!(back, caseload, "{format}");
            assert_eq!(
                seen.get(),
                std::fs::metadata(&path).unwrap().len(),
                "{format}"
            );
        }
        let upper = dir.path().join("CASES.CSV");
        std::fs::write(&upper, "sex\nmale\n").unwrap();
        assert_eq!(Caseload::from_path(&upper, &|_| {}).unwrap().len(), 1);
        let err = Caseload::from_path(&dir.path().join("cases.cvs"), &|_| {}).unwrap_err();
        assert!(
            err.to_string().ends_with(
                r#"cases.cvs: unknown caseload format ".cvs": expected a file name ending in .csv, .jsonl or .rcl (did you mean "csv"?)"#
            ),
            "{err}"
        );
        assert!(err.is_input_error());
        let err = Caseload::from_path(&dir.path().join("cases"), &|_| {}).unwrap_err();
        assert!(
            err.to_string().contains("cases: no file extension"),
            "{err}"
        );
        let err = Caseload::from_path(&dir.path().join("missing.csv"), &|_| {}).unwrap_err();
        assert!(err.to_string().contains("missing.csv: "), "{err}");
        assert!(err.is_input_error());
    }

    #[test]
    fn csv_forms_accepted() {
        // BOM, CRLF, any subset and order of columns, quoting, whitespace, blank lines, any
        // case where refuge-core accepts it, `;` lists with spaces and duplicates.
        let text = "\u{feff}languages,Sex_placeholder\n";
        assert!(parse_csv(text).is_err());
        let text = concat!(
            "\u{feff}languages, sex ,nationality,summons_received,documents,birth_date\r\n",
            "\"ru;EN\",male,ru,TRUE,summons; summons ;internal_passport,1990-01-31\r\n",
            "\r\n",
            " uk , \"female\" ,\"\",false,,\r\n",
            "\n",
            "\"\",,by, , ;,\n",
            ",,,,,",
        );
        let c = parse_csv(text).unwrap();
        assert_eq!(c.len(), 4);
        let first = c.row(0).unwrap();
        assert_eq!(
            first.languages,
            Some([Language::EN, Language::RU].into_iter().collect())
        );
        assert_eq!(first.sex, Some(Sex::Male));
        assert_eq!(first.nationality, Some(Country::RU));
        assert_eq!(first.summons_received, Some(true));
        assert_eq!(
            first.documents,
            Some(
                [DocumentKind::Summons, DocumentKind::InternalPassport]
                    .into_iter()
                    .collect()
            )
        );
        assert_eq!(first.known().count(), 6);
        let second = c.row(1).unwrap();
        assert_eq!(second.sex, Some(Sex::Female));
        assert_eq!(second.nationality, None);
        assert_eq!(second.summons_received, Some(false));
        assert_eq!(second.known().count(), 3);
        let third = c.row(2).unwrap();
        assert_eq!(third.nationality, Some(Country::BY));
        // `;` alone is a known empty set, as refuge-core's text parser reads it.
        assert_eq!(third.documents, Some(EnumSet::new()));
        assert_eq!(third.known().count(), 2);
        assert_eq!(c.row(3), Some(Facts::default()));
        // A quote inside a quoted cell.
        let c = parse_csv("sex\n\"ma\"\"le\"\n");
        assert!(c.unwrap_err().to_string().contains(r#"found "ma\"le""#));
        // Header only; single column with an empty line.
        assert!(parse_csv("sex,nationality\n").unwrap().is_empty());
        assert!(parse_csv("sex,nationality").unwrap().is_empty());
        let c = parse_csv("sex\nmale\n\nfemale\n").unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(1, Fact::Sex), None);
    }

    #[test]
    fn csv_errors_name_line_column_and_expectation() {
        let cases: &[(&str, &str)] = &[
            (
                "nationality,sex\nRU,male\nRU,mal\n",
                r#"line 3, column "sex": expected one of female, male, other; found "mal" (did you mean "male"?)"#,
            ),
            (
                "birth_date\n1990-02-30\n",
                r#"line 2, column "birth_date": expected a date YYYY-MM-DD; found "1990-02-30""#,
            ),
            (
                "nationality\nRUS\n",
                r#"line 2, column "nationality": "RUS" is not an ISO 3166-1 alpha-2 country code"#,
            ),
            (
                "languages\nen;xx\n",
                r#"line 2, column "languages": "xx" is not an ISO 639-1 language code"#,
            ),
            (
                "summons_received\nyes\n",
                r#"line 2, column "summons_received": expected true or false; found "yes""#,
            ),
            (
                "documents\nsummons;pasport\n",
                r#"line 2, column "documents": expected one of internal_passport"#,
            ),
            (
                "sex,nationalty\n",
                r#"line 1, column 2: unknown fact "nationalty" (did you mean "nationality"?)"#,
            ),
            (
                "age\n",
                r#"line 1, column 1: unknown fact "age" (did you mean "birth_date"?)"#,
            ),
            (
                "sex,nationality,sex\n",
                r#"line 1, column 3: fact "sex" is given twice (first in column 1)"#,
            ),
            (
                "sex,nationality\nmale\n",
                "line 2: expected 2 cells, as in the header; found 1",
            ),
            (
                "sex,nationality\nmale,RU,,\n",
                "line 2: expected 2 cells, as in the header; found 4",
            ),
            (
                "sex,nationality\n\"male,RU\n",
                "line 2: a quoted cell has no closing quote on its line",
            ),
            (
                "sex,nationality\n\"male\"x,RU\n",
                "line 2: unexpected text after a quoted cell",
            ),
            (
                "",
                "the file is empty: expected a header line of fact names",
            ),
            (
                "\u{feff}",
                "the file is empty: expected a header line of fact names",
            ),
        ];
        for (text, message) in cases {
            let err = csv_error(text);
            assert!(err.starts_with(message), "{text:?}: {err}");
        }
        let err = Caseload::from_csv_bytes(b"sex\nm\xffle\n", &|_| {}).unwrap_err();
        assert_eq!(err.to_string(), r#"line 2, column "sex": not valid UTF-8"#);
    }

    #[test]
    fn csv_error_lines_are_right_across_threads_and_blocks() {
        // About 13 MB: several blocks, each split between threads.
        let row = "RU,1990-01-31,male,other,none,evaded_callup,before_callup,true,false,,\
                   2022-09-25,KZ,visa_free,,internal_passport;international_passport,none,false,\
                   none,,false,none,false,false,en;ru\n";
        let header = format!("{}\n", Fact::NAMES.join(","));
        let n = 13_000_000 / row.len();
        let mut text = header.clone();
        for _ in 0..n {
            text.push_str(row);
        }
        let c = parse_csv(&text).unwrap();
        assert_eq!(c.len(), n);
        assert_eq!(c.row(n - 1), c.row(0));
        let bad_line = n - 1234;
        let mut text = header;
        for i in 0..n {
            if i + 2 == bad_line {
                text.push_str(&row.replace("male", "mal"));
            } else {
                text.push_str(row);
            }
        }
        assert!(
            csv_error(&text).starts_with(&format!(r#"line {bad_line}, column "sex": expected"#)),
            "{}",
            csv_error(&text)
        );
    }

    #[test]
    fn jsonl_errors_name_the_line() {
        let text = "{\"sex\": \"male\"}\n\n{\"sex\": \"mal\"}\n";
        let err = Caseload::from_jsonl_bytes(text.as_bytes(), &|_| {}).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"line 3, column 13: fact "sex": expected one of female, male, other; found "mal" (did you mean "male"?)"#
        );
        let err = Caseload::read_jsonl("{}\n{\"sexx\": 1}".as_bytes(), None, &|_| {}).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(r#"line 2, column 7: unknown fact "sexx" (did you mean "sex"?)"#),
            "{err}"
        );
        let err = Caseload::from_jsonl_bytes(b"{}\n{\"sex\": \n", &|_| {}).unwrap_err();
        assert!(err.to_string().starts_with("line 2, column"), "{err}");
        let c = Caseload::from_jsonl_bytes(b"{}\r\n\r\n{\"sex\": null}", &|_| {}).unwrap();
        assert_eq!(c.len(), 2);
    }

    fn rcl(caseload: &Caseload) -> Vec<u8> {
        let mut out = Vec::new();
        caseload.write_binary(&mut out, &|_| {}).unwrap();
        out
    }

    fn binary_error(bytes: &[u8]) -> String {
        Caseload::from_binary_bytes(bytes).unwrap_err().to_string()
    }

    /// The offset of `fact`'s column data in a `.rcl` file of `rows` rows.
    fn column_offset(fact: Fact, rows: usize) -> usize {
        let directory: usize = Fact::ALL.iter().map(|f| 3 + f.name().len()).sum();
        let before: usize = Fact::ALL
            .iter()
            .take_while(|f| **f != fact)
            .map(|f| binary_type(f.fact_type()).1 * rows)
            .sum();
        24 + directory + before
    }

    #[test]
    fn binary_layout() {
        let caseload: Caseload = sample().iter().collect();
        let bytes = rcl(&caseload);
        assert_eq!(&bytes[..8], b"REFUGECL");
        assert_eq!(&bytes[8..12], &1u32.to_le_bytes());
        assert_eq!(&bytes[12..16], &24u32.to_le_bytes());
        assert_eq!(&bytes[16..24], &4u64.to_le_bytes());
        assert_eq!(bytes[24], 11);
        assert_eq!(&bytes[25..36], b"nationality");
        assert_eq!(&bytes[36..38], &[1, 2]);
        let at = column_offset(Fact::Sex, 4);
        assert_eq!(&bytes[at..at + 4], &[1, 255, 2, 255]);
        assert_eq!(bytes.len(), column_offset(Fact::Languages, 4) + 4 * 24);
        assert_eq!(bytes.len(), column_offset(Fact::Languages, 0) + 4 * 65);
    }

    #[test]
    fn malformed_binary_is_rejected() {
        let caseload: Caseload = sample().iter().collect();
        let good = rcl(&caseload);
        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(
            binary_error(&bad).ends_with(r#"it does not start with the magic bytes "REFUGECL""#)
        );
        assert!(binary_error(b"REFU").ends_with("the file is truncated in the header"));
        let mut bad = good.clone();
        bad[8] = 2;
        assert!(
            binary_error(&bad)
                .ends_with("format version 2 is not supported (this refuge reads version 1)")
        );
        let cut = &good[..good.len() - 1];
        assert!(
            binary_error(cut).ends_with(r#"column "languages" has 95 of its 96 bytes"#),
            "{}",
            binary_error(cut)
        );
        let mut bad = good.clone();
        bad.push(0);
        assert!(binary_error(&bad).ends_with("there are bytes after the last column"));
        let mut bad = good.clone();
        bad[column_offset(Fact::Sex, 4) + 1] = 3;
        assert_eq!(
            binary_error(&bad),
            r#"not a valid refuge caseload (.rcl) file: row 2, column "sex": invalid value 3 (expected an index below 3, or 255 for unknown)"#
        );
        let mut bad = good.clone();
        bad[column_offset(Fact::SummonsReceived, 4)] = 7;
        assert!(
            binary_error(&bad).contains(r#"row 1, column "summons_received": invalid value 7"#)
        );
        let mut bad = good.clone();
        let at = column_offset(Fact::Nationality, 4) + 2;
        bad[at..at + 2].copy_from_slice(&249u16.to_le_bytes());
        assert!(binary_error(&bad).contains(r#"row 2, column "nationality": invalid value 249"#));
        let mut bad = good.clone();
        let at = column_offset(Fact::Documents, 4);
        bad[at..at + 4].copy_from_slice(&(1u32 << 7).to_le_bytes());
        assert!(binary_error(&bad).contains(r#"row 1, column "documents": invalid value 0x80"#));
        let mut bad = good.clone();
        let at = column_offset(Fact::BirthDate, 4);
        bad[at..at + 4].copy_from_slice(&i32::MAX.to_le_bytes());
        assert!(binary_error(&bad).contains(r#"row 1, column "birth_date": invalid value"#));
        let mut bad = good.clone();
        let at = column_offset(Fact::Languages, 4) + 2 * 32;
        bad[at..at + 8].copy_from_slice(&(1u64 << 60).to_le_bytes());
        assert!(binary_error(&bad).contains(r#"row 1, column "languages": invalid value"#));
        let mut bad = good.clone();
        bad[25] = b'N';
        assert!(binary_error(&bad).contains(
            r#"column 1: unknown fact "Nationality" (did you mean "nationality"?) (was the file written by a newer refuge?)"#
        ));
        let mut bad = good.clone();
        bad[37] = 4;
        assert!(
            binary_error(&bad).contains(r#"column "nationality": type tag 1 with 4 bytes a row"#)
        );
        // A header claiming far more rows than there are bytes allocates nothing big.
        let mut bad = good.clone();
        bad[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(binary_error(&bad).contains("the file is truncated: column \"nationality\""));
        let mut bad = good;
        bad[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(!binary_error(&bad).is_empty());
    }

    #[test]
    fn binary_with_fewer_columns_reads_them_as_unknown() {
        // A file written with only `sex` (as an older vocabulary might).
        let mut bytes = Vec::new();
        bytes.extend_from_slice(b"REFUGECL");
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&2u64.to_le_bytes());
        bytes.push(3);
        bytes.extend_from_slice(b"sex");
        bytes.extend_from_slice(&[4, 1]);
        bytes.extend_from_slice(&[0, 1]);
        let c = Caseload::from_binary_bytes(&bytes).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(1, Fact::Sex), Some(FactValue::Sex(Sex::Male)));
        assert_eq!(c.known(Fact::Nationality), 0);
        assert_eq!(c.known(Fact::Languages), 0);
        assert_eq!(c.row(0).unwrap().known().count(), 1);
    }

    #[test]
    fn days() {
        assert_eq!(date_to_days(time::macros::date!(1970 - 01 - 01)), 0);
        assert_eq!(date_to_days(time::macros::date!(1969 - 12 - 31)), -1);
        for d in [-1_000_000, -1, 0, 1, 19_000, 2_000_000] {
            assert_eq!(days_to_date(d).map(date_to_days), Some(d));
        }
        assert_eq!(days_to_date(UNKNOWN_DATE), None);
        assert_eq!(days_to_date(i32::MAX), None);
        assert_eq!(fast_date(b"2024-02-29"), Some(19_782));
        assert_eq!(fast_date(b"2023-02-29"), None);
        assert_eq!(fast_date(b"2023-13-01"), None);
        assert_eq!(fast_date(b"2023-1-011"), None);
    }

    #[test]
    fn progress_is_reported() {
        let caseload: Caseload = sample().iter().cycle().take(200_000).collect();
        let mut bytes = Vec::new();
        let rows = std::cell::Cell::new(0);
        caseload.write_csv(&mut bytes, &|n| rows.set(n)).unwrap();
        assert_eq!(rows.get(), 200_000);
        let seen = std::cell::RefCell::new(Vec::new());
        let back = Caseload::from_csv_bytes(&bytes, &|n| seen.borrow_mut().push(n)).unwrap();
        assert_eq!(back, caseload);
        let seen = seen.into_inner();
        assert!(seen.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(seen.last().copied(), Some(bytes.len() as u64));
    }
}
