//! The facts vocabulary (v1): everything a programme's rules may speak about.
//!
//! There are 24 facts ([`Fact::ALL`]), each of one [`FactType`]. A person's facts are a
//! [`Facts`] record with one typed, optional field per fact: every fact may be unknown. Generic
//! code (the rule engine, CSV import, the web forms) goes through [`Facts::get`],
//! [`Facts::set`] and [`FactValue`] instead.
//!
//! Text forms are the same everywhere: countries as ISO 3166-1 alpha-2 (`RU`), languages as
//! ISO 639-1 (`ru`), dates as `YYYY-MM-DD`, booleans as `true`/`false`, enum values in
//! snake_case, sets `;`-separated in text ([`FactValue::parse`]) and as arrays in JSON.
//!
//! `age` is not a fact: it is derived from `birth_date` at the evaluation date ([`age_on`]).

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value as Json;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::str::FromStr;
use time::{Date, Month};

use crate::country::{Country, InvalidCountry};
use crate::language::{InvalidLanguage, Language, LanguageSet};
use crate::suggest::{DidYouMean, clip, nearest};

// ---------------------------------------------------------------------------------------------
// Enumerated values
// ---------------------------------------------------------------------------------------------

/// A closed set of values that a fact may take (`sex`, `refusal`, …), so that generic code can
/// list, name, index and parse them.
///
/// Every implementation has at most 32 values (so that an [`EnumSet`] fits in a `u32`), indexed
/// densely from 0 in declaration order. Indexes and names are stable: values are only ever
/// appended.
pub trait FactEnum: Copy + Ord + Hash + fmt::Debug + 'static {
    /// Every value, in index order.
    const ALL: &'static [Self];
    /// The text form of every value, in index order (`NAMES[v.index()] == v.as_str()`).
    const NAMES: &'static [&'static str];

    /// The text form of this value, in snake_case.
    fn as_str(self) -> &'static str;

    /// The stable position of this value in [`FactEnum::ALL`].
    fn index(self) -> u8;

    /// The value at `index` in [`FactEnum::ALL`], if there is one.
    fn from_index(index: u8) -> Option<Self> {
        Self::ALL.get(usize::from(index)).copied()
    }

    /// Parses the exact text form of a value; the error lists the valid values and suggests the
    /// closest one.
    fn parse_name(s: &str) -> Result<Self, InvalidEnumValue> {
        Self::NAMES
            .iter()
            .position(|name| *name == s)
            .and_then(|i| Self::ALL.get(i).copied())
            .ok_or_else(|| InvalidEnumValue {
                expected: Self::NAMES,
                found: clip(s),
                suggestion: nearest(s, Self::NAMES.iter().copied()),
            })
    }
}

/// Text that is none of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected one of {}; found {found:?}{}", OneOf(.expected), DidYouMean(*.suggestion))]
pub struct InvalidEnumValue {
    /// The valid values.
    pub expected: &'static [&'static str],
    /// The text found (cut to a readable length).
    pub found: String,
    /// The closest valid value, when one is close.
    pub suggestion: Option<&'static str>,
}

/// Renders a list of names as `a, b, c`.
struct OneOf<'a>(&'a [&'a str]);

impl fmt::Display for OneOf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

/// Deserialises one value of `T` from a string.
struct EnumVisitor<T>(PhantomData<fn() -> T>);

impl<T: FactEnum> Visitor<'_> for EnumVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "one of {}", OneOf(T::NAMES))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        T::parse_name(v).map_err(E::custom)
    }
}

impl<'de, T: FactEnum> DeserializeSeed<'de> for EnumVisitor<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        deserializer.deserialize_str(self)
    }
}

/// Declares a value enum with its text forms, and implements [`FactEnum`], `FromStr`,
/// `Display` and serde (as the text form) for it.
macro_rules! fact_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in index order.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];
            /// The text form of every value, in index order.
            pub const NAMES: &'static [&'static str] = &[$($text,)+];

            /// The text form of this value, in snake_case.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            /// The stable position of this value in [`Self::ALL`].
            pub const fn index(self) -> u8 {
                self as u8
            }

            /// The value at `index` in [`Self::ALL`], if there is one.
            pub fn from_index(index: u8) -> Option<Self> {
                Self::ALL.get(usize::from(index)).copied()
            }
        }

        // An `EnumSet` of these must fit in a `u32`.
        const _: () = assert!($name::ALL.len() <= 32);

        impl FactEnum for $name {
            const ALL: &'static [Self] = $name::ALL;
            const NAMES: &'static [&'static str] = $name::NAMES;

            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }

            fn index(self) -> u8 {
                $name::index(self)
            }
        }

        impl FromStr for $name {
            type Err = InvalidEnumValue;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <Self as FactEnum>::parse_name(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(EnumVisitor::<Self>(PhantomData))
            }
        }
    };
}

fact_enum! {
    /// A person's sex, as recorded by the person (fact `sex`).
    Sex {
        /// Female.
        Female = "female",
        /// Male.
        Male = "male",
        /// Neither, or not to be recorded as either.
        Other = "other",
    }
}

fact_enum! {
    /// A profession that matters to conscription (fact `profession`).
    Profession {
        /// A medical profession (doctor, nurse, paramedic, …).
        Medical = "medical",
        /// A military-relevant technical profession (engineer, IT specialist, driver, …).
        MilitaryTechnical = "military_technical",
        /// Any other profession.
        Other = "other",
    }
}

fact_enum! {
    /// Relationship to the armed forces of the country of origin (fact `service_status`).
    ServiceStatus {
        /// No military status.
        None = "none",
        /// In the reserve.
        Reservist = "reservist",
        /// Serving as a conscript.
        Conscript = "conscript",
        /// Serving under a contract.
        Contract = "contract",
        /// Mobilised from the reserve.
        Mobilised = "mobilised",
    }
}

fact_enum! {
    /// How the person refused military service (fact `refusal`).
    Refusal {
        /// No refusal.
        None = "none",
        /// Evaded call-up (did not report, left before being called up).
        EvadedCallup = "evaded_callup",
        /// Objected (declared conscientious objection, applied for alternative service).
        Objected = "objected",
        /// Deserted (left a unit without permission).
        Deserted = "deserted",
        /// Refused orders (for example, to go to the front).
        RefusedOrders = "refused_orders",
        /// Sought to terminate a military contract.
        ContractTerminationSought = "contract_termination_sought",
    }
}

fact_enum! {
    /// When, in the course of service, the refusal happened (fact `refusal_stage`).
    RefusalStage {
        /// Before being called up.
        BeforeCallup = "before_callup",
        /// During training.
        InTraining = "in_training",
        /// While in service.
        InService = "in_service",
        /// As a reservist.
        AsReservist = "as_reservist",
    }
}

fact_enum! {
    /// A ground for objecting to military service (values of fact `objection_grounds`).
    ObjectionGround {
        /// Conscience.
        Conscience = "conscience",
        /// Religion.
        Religion = "religion",
        /// Political opinion.
        Political = "political",
        /// Family ties to people on the other side.
        FamilyTies = "family_ties",
        /// Refusal to take part in acts contrary to international law.
        InternationalLaw = "international_law",
    }
}

fact_enum! {
    /// Residence status in the current country (fact `stay_status`).
    StayStatus {
        /// Staying visa-free.
        VisaFree = "visa_free",
        /// Staying on a visa.
        Visa = "visa",
        /// Holding a residence permit.
        ResidencePermit = "residence_permit",
        /// Staying as a student.
        Student = "student",
        /// Staying as a visitor.
        Visitor = "visitor",
        /// Has applied for asylum.
        AsylumSeeker = "asylum_seeker",
        /// Without a right to stay.
        Irregular = "irregular",
    }
}

fact_enum! {
    /// A kind of document the person holds (values of fact `documents`).
    DocumentKind {
        /// Internal (domestic) passport.
        InternalPassport = "internal_passport",
        /// International (travel) passport.
        InternationalPassport = "international_passport",
        /// Military identity card.
        MilitaryId = "military_id",
        /// A summons from a conscription office.
        Summons = "summons",
        /// A military contract.
        Contract = "contract",
        /// Papers of a criminal case.
        CriminalCasePapers = "criminal_case_papers",
        /// A record of detention or a fine for protest.
        ProtestRecord = "protest_record",
    }
}

fact_enum! {
    /// Criminal prosecution in the country of origin (fact `prosecution`).
    Prosecution {
        /// Not prosecuted.
        None = "none",
        /// Under investigation.
        Investigated = "investigated",
        /// Charged.
        Charged = "charged",
        /// Convicted.
        Convicted = "convicted",
        /// On a wanted list.
        Wanted = "wanted",
    }
}

fact_enum! {
    /// A deportation or transfer order against the person (fact `deportation_order`).
    DeportationOrder {
        /// No order.
        None = "none",
        /// Ordered to the country of origin.
        ToOrigin = "to_origin",
        /// Ordered to a third country.
        ToThirdCountry = "to_third_country",
    }
}

fact_enum! {
    /// Protection already granted (fact `protection_status`).
    ProtectionStatus {
        /// None.
        None = "none",
        /// A humanitarian visa.
        HumanitarianVisa = "humanitarian_visa",
        /// Refugee status.
        Refugee = "refugee",
        /// Subsidiary protection.
        Subsidiary = "subsidiary",
        /// A national humanitarian status.
        NationalHumanitarian = "national_humanitarian",
        /// An extension of stay.
        StayExtension = "stay_extension",
        /// Protection under a moratorium on returns.
        Moratorium = "moratorium",
    }
}

// ---------------------------------------------------------------------------------------------
// Sets of enumerated values
// ---------------------------------------------------------------------------------------------

/// A set of values of a [`FactEnum`], as a `u32` bitmask (bit `i` is the value with index `i`).
/// `Copy`, no allocation, iterated in index order. Serialised as an array of text forms.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnumSet<T: FactEnum> {
    bits: u32,
    marker: PhantomData<fn() -> T>,
}

impl<T: FactEnum> EnumSet<T> {
    /// The empty set.
    pub const fn new() -> Self {
        EnumSet {
            bits: 0,
            marker: PhantomData,
        }
    }

    /// The set of every value.
    pub fn full() -> Self {
        EnumSet {
            bits: Self::mask(),
            marker: PhantomData,
        }
    }

    /// The bits that correspond to a value.
    fn mask() -> u32 {
        match u32::try_from(T::ALL.len()) {
            Ok(n) if n < 32 => (1u32 << n) - 1,
            _ => u32::MAX,
        }
    }

    fn bit(value: T) -> u32 {
        1u32.checked_shl(u32::from(value.index())).unwrap_or(0)
    }

    /// Adds `value`; returns whether it was not already present.
    pub fn insert(&mut self, value: T) -> bool {
        let added = !self.contains(value);
        self.bits |= Self::bit(value);
        added
    }

    /// Removes `value`; returns whether it was present.
    pub fn remove(&mut self, value: T) -> bool {
        let present = self.contains(value);
        self.bits &= !Self::bit(value);
        present
    }

    /// Whether `value` is in the set.
    pub fn contains(&self, value: T) -> bool {
        self.bits & Self::bit(value) != 0
    }

    /// The values in the set, in index order.
    pub fn iter(&self) -> impl Iterator<Item = T> + 'static {
        let bits = self.bits;
        T::ALL
            .iter()
            .copied()
            .filter(move |v| bits & Self::bit(*v) != 0)
    }

    /// The number of values in the set.
    pub fn len(&self) -> usize {
        self.bits.count_ones() as usize
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.bits == 0
    }

    /// The bitmask, for columnar storage: bit `i` is the value with index `i`.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// The set with bitmask `bits`; `None` if a bit that is no value is set.
    pub fn from_bits(bits: u32) -> Option<Self> {
        (bits & !Self::mask() == 0).then_some(EnumSet {
            bits,
            marker: PhantomData,
        })
    }

    /// Parses `;`-separated text forms (`"conscience;religion"`); whitespace around each value
    /// and empty items are ignored, duplicates accepted.
    pub fn parse_list(text: &str) -> Result<Self, InvalidEnumValue> {
        text.split(';')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(T::parse_name)
            .collect()
    }
}

impl<T: FactEnum> Default for EnumSet<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: FactEnum> FromIterator<T> for EnumSet<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut set = Self::new();
        set.extend(iter);
        set
    }
}

impl<T: FactEnum> Extend<T> for EnumSet<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for value in iter {
            self.insert(value);
        }
    }
}

impl<T: FactEnum> fmt::Debug for EnumSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(T::as_str)).finish()
    }
}

impl<T: FactEnum> fmt::Display for EnumSet<T> {
    /// The `;`-separated text forms, in index order (empty for the empty set).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, value) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            f.write_str(value.as_str())?;
        }
        Ok(())
    }
}

impl<T: FactEnum> Serialize for EnumSet<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for value in self.iter() {
            seq.serialize_element(value.as_str())?;
        }
        seq.end()
    }
}

impl<'de, T: FactEnum> Deserialize<'de> for EnumSet<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SetVisitor<T>(PhantomData<fn() -> T>);

        impl<'de, T: FactEnum> Visitor<'de> for SetVisitor<T> {
            type Value = EnumSet<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "an array of {}", OneOf(T::NAMES))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<EnumSet<T>, A::Error> {
                let mut set = EnumSet::new();
                while let Some(value) = seq.next_element_seed(EnumVisitor::<T>(PhantomData))? {
                    set.insert(value);
                }
                Ok(set)
            }
        }

        deserializer.deserialize_seq(SetVisitor(PhantomData))
    }
}

// ---------------------------------------------------------------------------------------------
// Fact types and values
// ---------------------------------------------------------------------------------------------

/// The type of a fact, as a rule type-checker sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FactType {
    /// A [`Country`].
    Country,
    /// A calendar date.
    Date,
    /// `true` or `false`.
    Bool,
    /// One of a closed list of values.
    Enum {
        /// The values, in index order.
        values: &'static [&'static str],
    },
    /// A set of values from a closed list.
    EnumSet {
        /// The values, in index order (bit `i` of the set is `values[i]`).
        values: &'static [&'static str],
    },
    /// A set of [`Language`]s.
    LanguageSet,
}

impl FactType {
    /// The type's keyword, as in the vocabulary table: `country`, `date`, `bool`, `enum` or
    /// `set`.
    pub fn keyword(self) -> &'static str {
        match self {
            FactType::Country => "country",
            FactType::Date => "date",
            FactType::Bool => "bool",
            FactType::Enum { .. } => "enum",
            FactType::EnumSet { .. } | FactType::LanguageSet => "set",
        }
    }

    /// The valid values of an enum or enum-set type; empty for other types.
    pub fn values(self) -> &'static [&'static str] {
        match self {
            FactType::Enum { values } | FactType::EnumSet { values } => values,
            _ => &[],
        }
    }
}

impl fmt::Display for FactType {
    /// What a value of this type looks like, for messages: `one of female, male, other`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FactType::Country => f.write_str("an ISO 3166-1 alpha-2 country code"),
            FactType::Date => f.write_str("a date YYYY-MM-DD"),
            FactType::Bool => f.write_str("true or false"),
            FactType::Enum { values } => write!(f, "one of {}", OneOf(values)),
            FactType::EnumSet { values } => write!(f, "a set of {}", OneOf(values)),
            FactType::LanguageSet => f.write_str("a set of ISO 639-1 language codes"),
        }
    }
}

/// The known value of one fact, whatever its type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FactValue {
    /// A country (`nationality`, `current_country`, `deportation_destination`).
    Country(Country),
    /// A date (`birth_date`, `left_origin_on`, `stay_expires_on`).
    Date(Date),
    /// A boolean (`summons_received`, `forced_contract`, `protest_record`, `referred_by_ngo`,
    /// `exclusion_indicator`, `sanctions_listed`).
    Bool(bool),
    /// `sex`.
    Sex(Sex),
    /// `profession`.
    Profession(Profession),
    /// `service_status`.
    ServiceStatus(ServiceStatus),
    /// `refusal`.
    Refusal(Refusal),
    /// `refusal_stage`.
    RefusalStage(RefusalStage),
    /// `stay_status`.
    StayStatus(StayStatus),
    /// `prosecution`.
    Prosecution(Prosecution),
    /// `deportation_order`.
    DeportationOrder(DeportationOrder),
    /// `protection_status`.
    ProtectionStatus(ProtectionStatus),
    /// `objection_grounds`.
    ObjectionGrounds(EnumSet<ObjectionGround>),
    /// `documents`.
    Documents(EnumSet<DocumentKind>),
    /// `languages`.
    Languages(LanguageSet),
}

impl FactValue {
    /// The type of this value.
    pub fn fact_type(&self) -> FactType {
        match self {
            FactValue::Country(_) => FactType::Country,
            FactValue::Date(_) => FactType::Date,
            FactValue::Bool(_) => FactType::Bool,
            FactValue::Sex(_) => <Sex as FieldType>::TYPE,
            FactValue::Profession(_) => <Profession as FieldType>::TYPE,
            FactValue::ServiceStatus(_) => <ServiceStatus as FieldType>::TYPE,
            FactValue::Refusal(_) => <Refusal as FieldType>::TYPE,
            FactValue::RefusalStage(_) => <RefusalStage as FieldType>::TYPE,
            FactValue::StayStatus(_) => <StayStatus as FieldType>::TYPE,
            FactValue::Prosecution(_) => <Prosecution as FieldType>::TYPE,
            FactValue::DeportationOrder(_) => <DeportationOrder as FieldType>::TYPE,
            FactValue::ProtectionStatus(_) => <ProtectionStatus as FieldType>::TYPE,
            FactValue::ObjectionGrounds(_) => <EnumSet<ObjectionGround> as FieldType>::TYPE,
            FactValue::Documents(_) => <EnumSet<DocumentKind> as FieldType>::TYPE,
            FactValue::Languages(_) => FactType::LanguageSet,
        }
    }

    /// The index of an enum value (its position in [`FactType::Enum`]'s `values`); `None` for
    /// values of other types.
    pub fn enum_index(&self) -> Option<u8> {
        match self {
            FactValue::Sex(v) => Some(v.index()),
            FactValue::Profession(v) => Some(v.index()),
            FactValue::ServiceStatus(v) => Some(v.index()),
            FactValue::Refusal(v) => Some(v.index()),
            FactValue::RefusalStage(v) => Some(v.index()),
            FactValue::StayStatus(v) => Some(v.index()),
            FactValue::Prosecution(v) => Some(v.index()),
            FactValue::DeportationOrder(v) => Some(v.index()),
            FactValue::ProtectionStatus(v) => Some(v.index()),
            _ => None,
        }
    }

    /// The bitmask of an enum-set value (bit `i` is [`FactType::EnumSet`]'s `values[i]`);
    /// `None` for values of other types.
    pub fn set_bits(&self) -> Option<u32> {
        match self {
            FactValue::ObjectionGrounds(s) => Some(s.bits()),
            FactValue::Documents(s) => Some(s.bits()),
            _ => None,
        }
    }

    fn write_text(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FactValue::Languages(set) => write_list(f, set.iter().map(|l| l.as_str())),
            FactValue::ObjectionGrounds(set) => fmt::Display::fmt(set, f),
            FactValue::Documents(set) => fmt::Display::fmt(set, f),
            FactValue::Country(c) => f.write_str(c.as_str()),
            FactValue::Date(d) => f.write_str(&format_date(*d)),
            FactValue::Bool(b) => f.write_str(if *b { "true" } else { "false" }),
            other => f.write_str(other.enum_name().unwrap_or_default()),
        }
    }

    fn enum_name(&self) -> Option<&'static str> {
        match self {
            FactValue::Sex(v) => Some(v.as_str()),
            FactValue::Profession(v) => Some(v.as_str()),
            FactValue::ServiceStatus(v) => Some(v.as_str()),
            FactValue::Refusal(v) => Some(v.as_str()),
            FactValue::RefusalStage(v) => Some(v.as_str()),
            FactValue::StayStatus(v) => Some(v.as_str()),
            FactValue::Prosecution(v) => Some(v.as_str()),
            FactValue::DeportationOrder(v) => Some(v.as_str()),
            FactValue::ProtectionStatus(v) => Some(v.as_str()),
            _ => None,
        }
    }
}

fn write_list<'a>(f: &mut fmt::Formatter<'_>, items: impl Iterator<Item = &'a str>) -> fmt::Result {
    for (i, item) in items.enumerate() {
        if i > 0 {
            f.write_str(";")?;
        }
        f.write_str(item)?;
    }
    Ok(())
}

impl fmt::Display for FactValue {
    /// The text form, as [`FactValue::parse`] reads it: `RU`, `1990-01-31`, `true`, `male`,
    /// `conscience;religion`, `en;ru`. An empty set displays as the empty string, which
    /// [`FactValue::parse`] reads as unknown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_text(f)
    }
}

impl Serialize for FactValue {
    /// As in a facts file: a string, a boolean, or an array of strings.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            FactValue::Country(c) => c.serialize(serializer),
            FactValue::Date(d) => serializer.serialize_str(&format_date(*d)),
            FactValue::Bool(b) => serializer.serialize_bool(*b),
            FactValue::ObjectionGrounds(s) => s.serialize(serializer),
            FactValue::Documents(s) => s.serialize(serializer),
            FactValue::Languages(s) => s.serialize(serializer),
            other => serializer.serialize_str(other.enum_name().unwrap_or_default()),
        }
    }
}

/// A value that is not valid for a fact: the fact, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fact \"{fact}\": {problem}")]
pub struct InvalidFactValue {
    /// The fact.
    pub fact: Fact,
    /// What is wrong with the value.
    pub problem: ValueProblem,
}

/// What is wrong with a fact's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueProblem {
    /// Not a country code.
    #[error(transparent)]
    Country(#[from] InvalidCountry),
    /// Not a language code.
    #[error(transparent)]
    Language(#[from] InvalidLanguage),
    /// None of the enum's values.
    #[error(transparent)]
    Enum(#[from] InvalidEnumValue),
    /// Not of the expected form.
    #[error("expected {expected}; found {found}")]
    Expected {
        /// What was expected (`a date YYYY-MM-DD`, `true, false or null`, …).
        expected: String,
        /// What was found, rendered (a quoted string, or JSON), cut to a readable length.
        found: String,
    },
}

/// A [`FactValue`] of the wrong type for a fact, given to [`Facts::set`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fact \"{fact}\" expects {}; got {value:?}", .fact.fact_type())]
pub struct FactTypeError {
    /// The fact.
    pub fact: Fact,
    /// The value that does not fit it.
    pub value: FactValue,
}

/// `YYYY-MM-DD`.
fn format_date(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Parses exactly `YYYY-MM-DD` (four-digit year, two-digit month and day), a real calendar
/// date.
pub fn parse_date(s: &str) -> Option<Date> {
    fn digits(b: &[u8]) -> Option<u32> {
        b.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    }
    match s.as_bytes() {
        [y @ .., b'-', m1, m2, b'-', d1, d2] if y.len() == 4 => {
            let year = i32::try_from(digits(y)?).ok()?;
            let month = Month::try_from(u8::try_from(digits(&[*m1, *m2])?).ok()?).ok()?;
            let day = u8::try_from(digits(&[*d1, *d2])?).ok()?;
            Date::from_calendar_date(year, month, day).ok()
        }
        _ => None,
    }
}

fn expected(expected: impl Into<String>, found: String) -> ValueProblem {
    ValueProblem::Expected {
        expected: expected.into(),
        found,
    }
}

/// `s` quoted, cut to a readable length.
fn quoted(s: &str) -> String {
    format!("{:?}", clip(s))
}

/// A JSON value, rendered compactly and cut to a readable length.
fn rendered(v: &Json) -> String {
    clip(&v.to_string())
}

/// The typed field of one fact: how it converts to and from [`FactValue`], text and JSON.
trait FieldType: Copy + Sized {
    const TYPE: FactType;

    fn into_value(self) -> FactValue;

    fn from_value(value: FactValue) -> Option<Self>;

    /// From trimmed, non-empty text.
    fn parse_text(text: &str) -> Result<Self, ValueProblem>;

    /// From a JSON value other than `null`.
    fn from_json(json: &Json) -> Result<Self, ValueProblem>;

    fn from_enum_index(_index: u8) -> Option<Self> {
        None
    }

    fn from_set_bits(_bits: u32) -> Option<Self> {
        None
    }
}

impl FieldType for Country {
    const TYPE: FactType = FactType::Country;

    fn into_value(self) -> FactValue {
        FactValue::Country(self)
    }

    fn from_value(value: FactValue) -> Option<Self> {
        match value {
            FactValue::Country(c) => Some(c),
            _ => None,
        }
    }

    fn parse_text(text: &str) -> Result<Self, ValueProblem> {
        Ok(text.parse()?)
    }

    fn from_json(json: &Json) -> Result<Self, ValueProblem> {
        match json {
            Json::String(s) => Self::parse_text(s),
            other => Err(expected(Self::TYPE.to_string(), rendered(other))),
        }
    }
}

impl FieldType for Date {
    const TYPE: FactType = FactType::Date;

    fn into_value(self) -> FactValue {
        FactValue::Date(self)
    }

    fn from_value(value: FactValue) -> Option<Self> {
        match value {
            FactValue::Date(d) => Some(d),
            _ => None,
        }
    }

    fn parse_text(text: &str) -> Result<Self, ValueProblem> {
        parse_date(text).ok_or_else(|| expected(Self::TYPE.to_string(), quoted(text)))
    }

    fn from_json(json: &Json) -> Result<Self, ValueProblem> {
        match json {
            Json::String(s) => Self::parse_text(s),
            other => Err(expected(Self::TYPE.to_string(), rendered(other))),
        }
    }
}

impl FieldType for bool {
    const TYPE: FactType = FactType::Bool;

    fn into_value(self) -> FactValue {
        FactValue::Bool(self)
    }

    fn from_value(value: FactValue) -> Option<Self> {
        match value {
            FactValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    fn parse_text(text: &str) -> Result<Self, ValueProblem> {
        if text.eq_ignore_ascii_case("true") {
            Ok(true)
        } else if text.eq_ignore_ascii_case("false") {
            Ok(false)
        } else {
            Err(expected("true or false", quoted(text)))
        }
    }

    fn from_json(json: &Json) -> Result<Self, ValueProblem> {
        match json {
            Json::Bool(b) => Ok(*b),
            other => Err(expected("true, false or null", rendered(other))),
        }
    }
}

fn enum_from_json<T: FactEnum>(json: &Json) -> Result<T, ValueProblem> {
    match json {
        Json::String(s) => Ok(T::parse_name(s)?),
        other => Err(expected(
            format!("one of {}", OneOf(T::NAMES)),
            rendered(other),
        )),
    }
}

fn enum_set_from_json<T: FactEnum>(json: &Json) -> Result<EnumSet<T>, ValueProblem> {
    match json {
        Json::Array(items) => items.iter().map(enum_from_json::<T>).collect(),
        other => Err(expected(
            format!("an array of {}", OneOf(T::NAMES)),
            rendered(other),
        )),
    }
}

/// Implements [`FieldType`] for a value enum, bound to its [`FactValue`] variant.
macro_rules! enum_field {
    ($($ty:ident),+ $(,)?) => {$(
        impl FieldType for $ty {
            const TYPE: FactType = FactType::Enum { values: $ty::NAMES };

            fn into_value(self) -> FactValue {
                FactValue::$ty(self)
            }

            fn from_value(value: FactValue) -> Option<Self> {
                match value {
                    FactValue::$ty(v) => Some(v),
                    _ => None,
                }
            }

            fn parse_text(text: &str) -> Result<Self, ValueProblem> {
                Ok(<$ty as FactEnum>::parse_name(text)?)
            }

            fn from_json(json: &Json) -> Result<Self, ValueProblem> {
                enum_from_json(json)
            }

            fn from_enum_index(index: u8) -> Option<Self> {
                $ty::from_index(index)
            }
        }
    )+};
}

enum_field!(
    Sex,
    Profession,
    ServiceStatus,
    Refusal,
    RefusalStage,
    StayStatus,
    Prosecution,
    DeportationOrder,
    ProtectionStatus,
);

/// Implements [`FieldType`] for an [`EnumSet`], bound to its [`FactValue`] variant.
macro_rules! enum_set_field {
    ($($elem:ident => $variant:ident),+ $(,)?) => {$(
        impl FieldType for EnumSet<$elem> {
            const TYPE: FactType = FactType::EnumSet { values: $elem::NAMES };

            fn into_value(self) -> FactValue {
                FactValue::$variant(self)
            }

            fn from_value(value: FactValue) -> Option<Self> {
                match value {
                    FactValue::$variant(v) => Some(v),
                    _ => None,
                }
            }

            fn parse_text(text: &str) -> Result<Self, ValueProblem> {
                Ok(EnumSet::parse_list(text)?)
            }

            fn from_json(json: &Json) -> Result<Self, ValueProblem> {
                enum_set_from_json(json)
            }

            fn from_set_bits(bits: u32) -> Option<Self> {
                EnumSet::from_bits(bits)
            }
        }
    )+};
}

enum_set_field!(ObjectionGround => ObjectionGrounds, DocumentKind => Documents);

impl FieldType for LanguageSet {
    const TYPE: FactType = FactType::LanguageSet;

    fn into_value(self) -> FactValue {
        FactValue::Languages(self)
    }

    fn from_value(value: FactValue) -> Option<Self> {
        match value {
            FactValue::Languages(v) => Some(v),
            _ => None,
        }
    }

    fn parse_text(text: &str) -> Result<Self, ValueProblem> {
        text.split(';')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| item.parse::<Language>().map_err(ValueProblem::from))
            .collect()
    }

    fn from_json(json: &Json) -> Result<Self, ValueProblem> {
        match json {
            Json::Array(items) => items
                .iter()
                .map(|item| match item {
                    Json::String(s) => Ok(s.parse::<Language>()?),
                    other => Err(expected("an ISO 639-1 language code", rendered(other))),
                })
                .collect(),
            other => Err(expected(
                "an array of ISO 639-1 language codes",
                rendered(other),
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The facts
// ---------------------------------------------------------------------------------------------

/// A name that is no fact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown fact {name:?}{}", DidYouMean(*.suggestion))]
pub struct UnknownFact {
    /// The name found (cut to a readable length).
    pub name: String,
    /// The closest fact name, when one is close.
    pub suggestion: Option<&'static str>,
}

/// Declares the facts: [`Fact`], the [`Facts`] record, and the generic accessors that map one
/// to the other. One line per fact: variant, field (= the fact's name), field type.
macro_rules! facts {
    ( $( $(#[$doc:meta])* $variant:ident $field:ident : $ty:ty, )+ ) => {
        /// The name of a fact. Ordered, and indexed, in vocabulary order.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Fact {
            $( $(#[$doc])* $variant, )+
        }

        impl Fact {
            /// Every fact, in vocabulary order.
            pub const ALL: &'static [Fact] = &[$(Fact::$variant,)+];
            /// Every fact's name, in vocabulary order.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($field),)+];

            /// The fact's name, in snake_case (`birth_date`).
            pub const fn name(self) -> &'static str {
                match self {
                    $(Fact::$variant => stringify!($field),)+
                }
            }

            /// The fact's type.
            pub const fn fact_type(self) -> FactType {
                match self {
                    $(Fact::$variant => <$ty as FieldType>::TYPE,)+
                }
            }
        }

        /// What is known about one person: one field per fact, `None` when unknown.
        ///
        /// In JSON, an object keyed by fact name holding only the known facts (in vocabulary
        /// order when written); `null` also means unknown when read.
        #[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
        pub struct Facts {
            $( $(#[$doc])* pub $field: Option<$ty>, )+
        }

        impl Facts {
            /// The value of `fact`, if known.
            pub fn get(&self, fact: Fact) -> Option<FactValue> {
                match fact {
                    $(Fact::$variant => self.$field.map(FieldType::into_value),)+
                }
            }

            /// Sets `fact` to `value` (`None`: unknown). A value of the wrong type for the fact
            /// is an error, and leaves the facts unchanged.
            pub fn set(
                &mut self,
                fact: Fact,
                value: Option<FactValue>,
            ) -> Result<(), FactTypeError> {
                match fact {
                    $(Fact::$variant => {
                        self.$field = match value {
                            None => None,
                            Some(v) => Some(
                                <$ty as FieldType>::from_value(v)
                                    .ok_or(FactTypeError { fact, value: v })?,
                            ),
                        };
                    })+
                }
                Ok(())
            }

            /// Whether `fact` is known.
            pub fn is_known(&self, fact: Fact) -> bool {
                match fact {
                    $(Fact::$variant => self.$field.is_some(),)+
                }
            }
        }

        impl FactValue {
            /// Parses one fact's value from text, as in a CSV cell: surrounding whitespace is
            /// ignored, empty text is unknown (`Ok(None)`), sets are `;`-separated.
            pub fn parse(fact: Fact, text: &str) -> Result<Option<FactValue>, InvalidFactValue> {
                let text = text.trim();
                if text.is_empty() {
                    return Ok(None);
                }
                match fact {
                    $(Fact::$variant => <$ty as FieldType>::parse_text(text)
                        .map(FieldType::into_value),)+
                }
                .map(Some)
                .map_err(|problem| InvalidFactValue { fact, problem })
            }

            /// Reads one fact's value from JSON, as in a facts file: `null` is unknown.
            pub fn from_json(fact: Fact, json: &Json) -> Result<Option<FactValue>, InvalidFactValue> {
                if json.is_null() {
                    return Ok(None);
                }
                match fact {
                    $(Fact::$variant => <$ty as FieldType>::from_json(json)
                        .map(FieldType::into_value),)+
                }
                .map(Some)
                .map_err(|problem| InvalidFactValue { fact, problem })
            }

            /// The value of enum fact `fact` with index `index`; `None` if `fact` is not an
            /// enum or `index` is out of range.
            pub fn from_enum_index(fact: Fact, index: u8) -> Option<FactValue> {
                match fact {
                    $(Fact::$variant => <$ty as FieldType>::from_enum_index(index)
                        .map(FieldType::into_value),)+
                }
            }

            /// The value of enum-set fact `fact` with bitmask `bits`; `None` if `fact` is not
            /// an enum set or `bits` has a bit that is no value.
            pub fn from_set_bits(fact: Fact, bits: u32) -> Option<FactValue> {
                match fact {
                    $(Fact::$variant => <$ty as FieldType>::from_set_bits(bits)
                        .map(FieldType::into_value),)+
                }
            }
        }
    };
}

facts! {
    /// `nationality`: the country of nationality.
    Nationality nationality: Country,
    /// `birth_date`.
    BirthDate birth_date: Date,
    /// `sex`.
    Sex sex: Sex,
    /// `profession`.
    Profession profession: Profession,
    /// `service_status`: relationship to the armed forces of the country of origin.
    ServiceStatus service_status: ServiceStatus,
    /// `refusal`: how military service was refused.
    Refusal refusal: Refusal,
    /// `refusal_stage`: when the refusal happened.
    RefusalStage refusal_stage: RefusalStage,
    /// `summons_received`: approached by a conscription office.
    SummonsReceived summons_received: bool,
    /// `forced_contract`: pressed to sign a military contract (e.g. after protest detention).
    ForcedContract forced_contract: bool,
    /// `objection_grounds`: grounds of objection to military service.
    ObjectionGrounds objection_grounds: EnumSet<ObjectionGround>,
    /// `left_origin_on`: the date the person left the country of origin.
    LeftOriginOn left_origin_on: Date,
    /// `current_country`: where the person is now.
    CurrentCountry current_country: Country,
    /// `stay_status`: residence status in the current country.
    StayStatus stay_status: StayStatus,
    /// `stay_expires_on`: when the right to stay in the current country ends.
    StayExpiresOn stay_expires_on: Date,
    /// `documents`: documents the person holds.
    Documents documents: EnumSet<DocumentKind>,
    /// `prosecution`: criminal prosecution in the country of origin.
    Prosecution prosecution: Prosecution,
    /// `protest_record`: detained or fined for anti-war protest.
    ProtestRecord protest_record: bool,
    /// `deportation_order`: a deportation or transfer order against the person.
    DeportationOrder deportation_order: DeportationOrder,
    /// `deportation_destination`: where a deportation order would send the person.
    DeportationDestination deportation_destination: Country,
    /// `referred_by_ngo`: the case was referred by a non-governmental organisation.
    ReferredByNgo referred_by_ngo: bool,
    /// `protection_status`: protection already granted.
    ProtectionStatus protection_status: ProtectionStatus,
    /// `exclusion_indicator`: serious reasons to consider a crime under Art. 1F Refugee
    /// Convention.
    ExclusionIndicator exclusion_indicator: bool,
    /// `sanctions_listed`: confirmed match on a sanctions list.
    SanctionsListed sanctions_listed: bool,
    /// `languages`: languages the person speaks.
    Languages languages: LanguageSet,
}

impl Fact {
    /// The stable position of this fact in [`Fact::ALL`].
    pub const fn index(self) -> u8 {
        self as u8
    }

    /// The fact at `index` in [`Fact::ALL`], if there is one.
    pub fn from_index(index: u8) -> Option<Fact> {
        Fact::ALL.get(usize::from(index)).copied()
    }
}

impl FromStr for Fact {
    type Err = UnknownFact;

    /// Parses a fact's exact name; the error suggests the closest name (and `birth_date` for
    /// `age`, which is derived from it).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fact::NAMES
            .iter()
            .position(|name| *name == s)
            .and_then(|i| Fact::ALL.get(i).copied())
            .ok_or_else(|| UnknownFact {
                name: clip(s),
                suggestion: if s.eq_ignore_ascii_case("age") {
                    Some(Fact::BirthDate.name())
                } else {
                    nearest(s, Fact::NAMES.iter().copied())
                },
            })
    }
}

impl fmt::Display for Fact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Fact {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Fact {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FactVisitor;

        impl Visitor<'_> for FactVisitor {
            type Value = Fact;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a fact name")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Fact, E> {
                v.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_str(FactVisitor)
    }
}

impl Facts {
    /// The facts that are known, in vocabulary order.
    pub fn known(&self) -> impl Iterator<Item = Fact> + '_ {
        Fact::ALL
            .iter()
            .copied()
            .filter(|fact| self.is_known(*fact))
    }

    /// Age in whole years on `on`; `None` if the birth date is unknown or after `on`.
    pub fn age_on(&self, on: Date) -> Option<u32> {
        age_on(self.birth_date?, on)
    }
}

/// Age in whole years on `on` of someone born on `birth`; `None` if `on` is before `birth`.
/// Someone born on 29 February turns a year older on 1 March in non-leap years.
pub fn age_on(birth: Date, on: Date) -> Option<u32> {
    if on < birth {
        return None;
    }
    let mut years = on.year() - birth.year();
    if (u8::from(on.month()), on.day()) < (u8::from(birth.month()), birth.day()) {
        years -= 1;
    }
    u32::try_from(years).ok()
}

impl Serialize for Facts {
    /// An object with the known facts only, in vocabulary order.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.known().count()))?;
        for fact in Fact::ALL {
            if let Some(value) = self.get(*fact) {
                map.serialize_entry(fact.name(), &value)?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Facts {
    /// From an object keyed by fact name. `null` is unknown; an unknown fact, a fact given
    /// twice, or an invalid value is an error naming the fact and what was expected.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FactsVisitor;

        impl<'de> Visitor<'de> for FactsVisitor {
            type Value = Facts;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object keyed by fact name")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Facts, A::Error> {
                let mut facts = Facts::default();
                let mut seen = 0u32;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    let fact: Fact = key.parse().map_err(de::Error::custom)?;
                    let bit = 1u32.checked_shl(u32::from(fact.index())).unwrap_or(0);
                    if seen & bit != 0 {
                        return Err(de::Error::custom(format_args!(
                            "fact \"{fact}\" is given twice"
                        )));
                    }
                    seen |= bit;
                    let value = map.next_value_seed(ValueSeed(fact))?;
                    facts.set(fact, value).map_err(de::Error::custom)?;
                }
                Ok(facts)
            }
        }

        deserializer.deserialize_map(FactsVisitor)
    }
}

/// Deserialises one fact's value. The value is checked inside the visitor, while the
/// deserialiser is still positioned at it, so that its error reports the value's own line and
/// column.
struct ValueSeed(Fact);

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Option<FactValue>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl ValueSeed {
    fn check<E: de::Error>(&self, json: &Json) -> Result<Option<FactValue>, E> {
        FactValue::from_json(self.0, json).map_err(E::custom)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Option<FactValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} or null", self.0.fact_type())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        self.check(&Json::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.check(&Json::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.check(&Json::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.check(&Json::from(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.check(&Json::String(v.to_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Json>()? {
            items.push(item);
        }
        self.check(&Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let json = Json::deserialize(de::value::MapAccessDeserializer::new(map))?;
        self.check(&json)
    }
}

// The fact bitmask above, and columnar code elsewhere, rely on this.
const _: () = assert!(Fact::ALL.len() <= 32);

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;
    use time::macros::date;

    fn check_enum<T>()
    where
        T: FactEnum + FromStr<Err = InvalidEnumValue> + fmt::Display + Serialize + DeserializeOwned,
    {
        assert_eq!(T::ALL.len(), T::NAMES.len());
        assert!(!T::ALL.is_empty() && T::ALL.len() <= 32);
        for (i, v) in T::ALL.iter().copied().enumerate() {
            assert_eq!(usize::from(v.index()), i);
            assert_eq!(T::from_index(v.index()), Some(v));
            assert_eq!(T::NAMES[i], v.as_str());
            assert_eq!(v.to_string(), v.as_str());
            assert_eq!(v.as_str().parse::<T>().unwrap(), v);
            assert_eq!(T::parse_name(v.as_str()).unwrap(), v);
            let json = serde_json::to_string(&v).unwrap();
            assert_eq!(json, format!("\"{}\"", v.as_str()));
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), v);
            // Snake case.
            assert!(
                v.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            );
            // Upper case is rejected, but suggested.
            let upper = v.as_str().to_ascii_uppercase();
            let err = upper.parse::<T>().unwrap_err();
            assert_eq!(err.suggestion, Some(v.as_str()));
        }
        assert!(T::ALL.windows(2).all(|w| w[0] < w[1]), "Ord follows index");
        assert_eq!(T::from_index(T::ALL.len() as u8), None);
        let err = "".parse::<T>().unwrap_err();
        assert_eq!(err.expected, T::NAMES);
        assert!(serde_json::from_str::<T>("\"nonsense-value\"").is_err());
        assert!(serde_json::from_str::<T>("3").is_err());
    }

    #[test]
    fn every_enum_is_consistent() {
        check_enum::<Sex>();
        check_enum::<Profession>();
        check_enum::<ServiceStatus>();
        check_enum::<Refusal>();
        check_enum::<RefusalStage>();
        check_enum::<ObjectionGround>();
        check_enum::<StayStatus>();
        check_enum::<DocumentKind>();
        check_enum::<Prosecution>();
        check_enum::<DeportationOrder>();
        check_enum::<ProtectionStatus>();
    }

    #[test]
    fn enum_names_match_the_vocabulary() {
        assert_eq!(Sex::NAMES, ["female", "male", "other"]);
        assert_eq!(
            Profession::NAMES,
            ["medical", "military_technical", "other"]
        );
        assert_eq!(
            ServiceStatus::NAMES,
            ["none", "reservist", "conscript", "contract", "mobilised"]
        );
        assert_eq!(
            Refusal::NAMES,
            [
                "none",
                "evaded_callup",
                "objected",
                "deserted",
                "refused_orders",
                "contract_termination_sought"
            ]
        );
        assert_eq!(
            RefusalStage::NAMES,
            ["before_callup", "in_training", "in_service", "as_reservist"]
        );
        assert_eq!(
            ObjectionGround::NAMES,
            [
                "conscience",
                "religion",
                "political",
                "family_ties",
                "international_law"
            ]
        );
        assert_eq!(
            StayStatus::NAMES,
            [
                "visa_free",
                "visa",
                "residence_permit",
                "student",
                "visitor",
                "asylum_seeker",
                "irregular"
            ]
        );
        assert_eq!(
            DocumentKind::NAMES,
            [
                "internal_passport",
                "international_passport",
                "military_id",
                "summons",
                "contract",
                "criminal_case_papers",
                "protest_record"
            ]
        );
        assert_eq!(
            Prosecution::NAMES,
            ["none", "investigated", "charged", "convicted", "wanted"]
        );
        assert_eq!(
            DeportationOrder::NAMES,
            ["none", "to_origin", "to_third_country"]
        );
        assert_eq!(
            ProtectionStatus::NAMES,
            [
                "none",
                "humanitarian_visa",
                "refugee",
                "subsidiary",
                "national_humanitarian",
                "stay_extension",
                "moratorium"
            ]
        );
    }

    #[test]
    fn enum_rejection_message() {
        let err = "mal".parse::<Sex>().unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"expected one of female, male, other; found "mal" (did you mean "male"?)"#
        );
        let err = "xyz".parse::<Sex>().unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"expected one of female, male, other; found "xyz""#
        );
        assert_eq!(err.suggestion, None);
        let err = serde_json::from_str::<Sex>(r#""mal""#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(r#"expected one of female, male, other; found "mal""#),
            "{err}"
        );
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn enum_set_operations() {
        let mut set = EnumSet::<ObjectionGround>::new();
        assert!(set.is_empty());
        assert_eq!(set, EnumSet::default());
        assert!(set.insert(ObjectionGround::Religion));
        assert!(set.insert(ObjectionGround::Conscience));
        assert!(!set.insert(ObjectionGround::Religion));
        assert_eq!(set.len(), 2);
        assert!(set.contains(ObjectionGround::Conscience));
        assert!(!set.contains(ObjectionGround::Political));
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            [ObjectionGround::Conscience, ObjectionGround::Religion]
        );
        assert_eq!(set.bits(), 0b11);
        assert_eq!(format!("{set:?}"), r#"{"conscience", "religion"}"#);
        assert_eq!(set.to_string(), "conscience;religion");
        assert!(set.remove(ObjectionGround::Conscience));
        assert!(!set.remove(ObjectionGround::Conscience));
        assert_eq!(set.bits(), 0b10);
        assert_eq!(EnumSet::<ObjectionGround>::full().len(), 5);
    }

    #[test]
    fn enum_set_bits_round_trip() {
        for bits in 0..(1u32 << DocumentKind::ALL.len()) {
            let set = EnumSet::<DocumentKind>::from_bits(bits).unwrap();
            assert_eq!(set.bits(), bits);
            assert_eq!(set.len(), bits.count_ones() as usize);
            let rebuilt: EnumSet<DocumentKind> = set.iter().collect();
            assert_eq!(rebuilt, set);
            let json = serde_json::to_string(&set).unwrap();
            assert_eq!(
                serde_json::from_str::<EnumSet<DocumentKind>>(&json).unwrap(),
                set
            );
            assert_eq!(
                EnumSet::<DocumentKind>::parse_list(&set.to_string()).unwrap(),
                set
            );
        }
        assert_eq!(EnumSet::<DocumentKind>::from_bits(1 << 7), None);
        assert_eq!(EnumSet::<DocumentKind>::from_bits(u32::MAX), None);
        assert_eq!(
            EnumSet::<ObjectionGround>::from_bits(0b1_1111)
                .unwrap()
                .len(),
            5
        );
        assert_eq!(EnumSet::<ObjectionGround>::from_bits(0b10_0000), None);
    }

    #[test]
    fn enum_set_json() {
        let set: EnumSet<ObjectionGround> =
            serde_json::from_str(r#"["religion","conscience","religion"]"#).unwrap();
        assert_eq!(set.bits(), 0b11, "duplicates accepted");
        assert_eq!(
            serde_json::to_string(&set).unwrap(),
            r#"["conscience","religion"]"#
        );
        let err = serde_json::from_str::<EnumSet<ObjectionGround>>(r#"["relgion"]"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected one of conscience, religion"),
            "{err}"
        );
        assert!(err.contains(r#"(did you mean "religion"?)"#), "{err}");
        assert!(err.contains("line 1"), "{err}");
        let err = serde_json::from_str::<EnumSet<ObjectionGround>>(r#""religion""#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected an array of conscience"), "{err}");
    }

    #[test]
    fn enum_set_parse_list() {
        let set = EnumSet::<ObjectionGround>::parse_list(" religion ; conscience;;").unwrap();
        assert_eq!(set.bits(), 0b11);
        assert!(
            EnumSet::<ObjectionGround>::parse_list("")
                .unwrap()
                .is_empty()
        );
        let err = EnumSet::<ObjectionGround>::parse_list("religion;politcal").unwrap_err();
        assert_eq!(err.suggestion, Some("political"));
    }

    #[test]
    fn fact_names_and_types() {
        assert_eq!(Fact::ALL.len(), 24);
        assert_eq!(Fact::NAMES.len(), 24);
        let expected = [
            ("nationality", "country"),
            ("birth_date", "date"),
            ("sex", "enum"),
            ("profession", "enum"),
            ("service_status", "enum"),
            ("refusal", "enum"),
            ("refusal_stage", "enum"),
            ("summons_received", "bool"),
            ("forced_contract", "bool"),
            ("objection_grounds", "set"),
            ("left_origin_on", "date"),
            ("current_country", "country"),
            ("stay_status", "enum"),
            ("stay_expires_on", "date"),
            ("documents", "set"),
            ("prosecution", "enum"),
            ("protest_record", "bool"),
            ("deportation_order", "enum"),
            ("deportation_destination", "country"),
            ("referred_by_ngo", "bool"),
            ("protection_status", "enum"),
            ("exclusion_indicator", "bool"),
            ("sanctions_listed", "bool"),
            ("languages", "set"),
        ];
        for (i, (fact, (name, keyword))) in Fact::ALL.iter().zip(expected).enumerate() {
            assert_eq!(fact.name(), name);
            assert_eq!(Fact::NAMES[i], name);
            assert_eq!(fact.to_string(), name);
            assert_eq!(fact.fact_type().keyword(), keyword, "{name}");
            assert_eq!(usize::from(fact.index()), i);
            assert_eq!(Fact::from_index(fact.index()), Some(*fact));
            assert_eq!(name.parse::<Fact>().unwrap(), *fact);
            let json = serde_json::to_string(fact).unwrap();
            assert_eq!(serde_json::from_str::<Fact>(&json).unwrap(), *fact);
        }
        assert_eq!(Fact::from_index(24), None);
        assert_eq!(Fact::Sex.fact_type(), FactType::Enum { values: Sex::NAMES });
        assert_eq!(Fact::Sex.fact_type().values(), ["female", "male", "other"]);
        assert_eq!(
            Fact::Documents.fact_type(),
            FactType::EnumSet {
                values: DocumentKind::NAMES
            }
        );
        assert_eq!(Fact::Languages.fact_type(), FactType::LanguageSet);
        assert_eq!(Fact::Nationality.fact_type().values(), [] as [&str; 0]);
        assert_eq!(
            Fact::Sex.fact_type().to_string(),
            "one of female, male, other"
        );
    }

    #[test]
    fn unknown_fact_message() {
        let err = "nationalty".parse::<Fact>().unwrap_err();
        assert_eq!(
            err,
            UnknownFact {
                name: "nationalty".into(),
                suggestion: Some("nationality")
            }
        );
        assert_eq!(
            err.to_string(),
            r#"unknown fact "nationalty" (did you mean "nationality"?)"#
        );
        let err = "colour".parse::<Fact>().unwrap_err();
        assert_eq!(err.to_string(), r#"unknown fact "colour""#);
        let err = "age".parse::<Fact>().unwrap_err();
        assert_eq!(err.suggestion, Some("birth_date"));
        assert!("Sex".parse::<Fact>().is_err(), "names are exact");
    }

    /// Facts with every fact known.
    fn full() -> Facts {
        Facts {
            nationality: Some(Country::RU),
            birth_date: Some(date!(1990 - 01 - 31)),
            sex: Some(Sex::Male),
            profession: Some(Profession::MilitaryTechnical),
            service_status: Some(ServiceStatus::Reservist),
            refusal: Some(Refusal::EvadedCallup),
            refusal_stage: Some(RefusalStage::BeforeCallup),
            summons_received: Some(true),
            forced_contract: Some(false),
            objection_grounds: Some(
                [ObjectionGround::Political, ObjectionGround::Conscience]
                    .into_iter()
                    .collect(),
            ),
            left_origin_on: Some(date!(2022 - 09 - 22)),
            current_country: Some("GE".parse().unwrap()),
            stay_status: Some(StayStatus::VisaFree),
            stay_expires_on: Some(date!(2023 - 09 - 22)),
            documents: Some(
                [DocumentKind::Summons, DocumentKind::InternationalPassport]
                    .into_iter()
                    .collect(),
            ),
            prosecution: Some(Prosecution::Wanted),
            protest_record: Some(true),
            deportation_order: Some(DeportationOrder::ToOrigin),
            deportation_destination: Some(Country::RU),
            referred_by_ngo: Some(true),
            protection_status: Some(ProtectionStatus::None),
            exclusion_indicator: Some(false),
            sanctions_listed: Some(false),
            languages: Some([Language::RU, Language::EN].into_iter().collect()),
        }
    }

    const FULL_JSON: &str = r#"{"nationality":"RU","birth_date":"1990-01-31","sex":"male","profession":"military_technical","service_status":"reservist","refusal":"evaded_callup","refusal_stage":"before_callup","summons_received":true,"forced_contract":false,"objection_grounds":["conscience","political"],"left_origin_on":"2022-09-22","current_country":"GE","stay_status":"visa_free","stay_expires_on":"2023-09-22","documents":["international_passport","summons"],"prosecution":"wanted","protest_record":true,"deportation_order":"to_origin","deportation_destination":"RU","referred_by_ngo":true,"protection_status":"none","exclusion_indicator":false,"sanctions_listed":false,"languages":["en","ru"]}"#;

    #[test]
    fn json_round_trip_full() {
        let facts = full();
        assert_eq!(facts.known().count(), 24);
        let json = serde_json::to_string(&facts).unwrap();
        assert_eq!(json, FULL_JSON, "keys in vocabulary order");
        assert_eq!(serde_json::from_str::<Facts>(&json).unwrap(), facts);
    }

    #[test]
    fn json_round_trip_each_fact_alone() {
        let full = full();
        for fact in Fact::ALL.iter().copied() {
            let mut one = Facts::default();
            one.set(fact, full.get(fact)).unwrap();
            assert_eq!(one.known().collect::<Vec<_>>(), [fact]);
            let json = serde_json::to_string(&one).unwrap();
            assert!(
                json.starts_with(&format!("{{\"{}\":", fact.name())),
                "{json}"
            );
            assert_eq!(serde_json::from_str::<Facts>(&json).unwrap(), one, "{json}");
        }
    }

    #[test]
    fn json_unknown_and_empty() {
        assert_eq!(serde_json::to_string(&Facts::default()).unwrap(), "{}");
        assert_eq!(
            serde_json::from_str::<Facts>("{}").unwrap(),
            Facts::default()
        );
        let facts: Facts =
            serde_json::from_str(r#"{"sex": null, "nationality": "by", "languages": []}"#).unwrap();
        assert_eq!(facts.sex, None);
        assert_eq!(facts.nationality, "BY".parse().ok());
        assert_eq!(facts.languages, Some(LanguageSet::new()), "known empty set");
        assert_eq!(
            serde_json::to_string(&facts).unwrap(),
            r#"{"nationality":"BY","languages":[]}"#
        );
    }

    fn json_error(json: &str) -> String {
        serde_json::from_str::<Facts>(json).unwrap_err().to_string()
    }

    #[test]
    fn json_errors_name_the_fact_and_the_expectation() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"sex": "mal"}"#,
                r#"fact "sex": expected one of female, male, other; found "mal" (did you mean "male"?)"#,
            ),
            (
                r#"{"sex": 1}"#,
                r#"fact "sex": expected one of female, male, other; found 1"#,
            ),
            (
                r#"{"birth_date": "1990-13-01"}"#,
                r#"fact "birth_date": expected a date YYYY-MM-DD; found "1990-13-01""#,
            ),
            (
                r#"{"birth_date": 1990}"#,
                r#"fact "birth_date": expected a date YYYY-MM-DD; found 1990"#,
            ),
            (
                r#"{"nationality": "RUS"}"#,
                r#"fact "nationality": "RUS" is not an ISO 3166-1 alpha-2 country code"#,
            ),
            (
                r#"{"nationality": ["RU"]}"#,
                r#"fact "nationality": expected an ISO 3166-1 alpha-2 country code; found ["RU"]"#,
            ),
            (
                r#"{"summons_received": "yes"}"#,
                r#"fact "summons_received": expected true, false or null; found "yes""#,
            ),
            (
                r#"{"objection_grounds": "religion"}"#,
                r#"fact "objection_grounds": expected an array of conscience, religion, political, family_ties, international_law; found "religion""#,
            ),
            (
                r#"{"objection_grounds": ["religon"]}"#,
                r#"fact "objection_grounds": expected one of conscience, religion, political, family_ties, international_law; found "religon" (did you mean "religion"?)"#,
            ),
            (
                r#"{"documents": [true]}"#,
                r#"fact "documents": expected one of internal_passport"#,
            ),
            (
                r#"{"languages": ["en", "rus"]}"#,
                r#"fact "languages": "rus" is not an ISO 639-1 language code"#,
            ),
            (
                r#"{"languages": [1]}"#,
                r#"fact "languages": expected an ISO 639-1 language code; found 1"#,
            ),
            (
                r#"{"languages": "en"}"#,
                r#"fact "languages": expected an array of ISO 639-1 language codes; found "en""#,
            ),
            (
                r#"{"nationalty": "RU"}"#,
                r#"unknown fact "nationalty" (did you mean "nationality"?)"#,
            ),
            (
                r#"{"age": 30}"#,
                r#"unknown fact "age" (did you mean "birth_date"?)"#,
            ),
            (
                r#"{"sex": "male", "sex": "male"}"#,
                r#"fact "sex" is given twice"#,
            ),
            (r#"["sex"]"#, "expected an object keyed by fact name"),
        ];
        for (json, message) in cases {
            let err = json_error(json);
            assert!(err.contains(message), "{json}: {err}");
            assert!(err.contains("line 1 column"), "{json}: {err}");
        }
    }

    #[test]
    fn json_error_points_at_the_line() {
        let err = json_error("{\n  \"nationality\": \"RU\",\n  \"sex\": \"mal\"\n}");
        assert!(err.contains(r#"fact "sex""#), "{err}");
        assert!(err.contains("line 3"), "{err}");
        let err = json_error("{\n  \"nationality\": \"RU\",\n\n  \"sexx\": \"male\"\n}");
        assert!(
            err.contains(r#"unknown fact "sexx" (did you mean "sex"?)"#),
            "{err}"
        );
        assert!(err.contains("line 4"), "{err}");
    }

    #[test]
    fn json_value_errors_point_at_the_value() {
        let err = json_error(
            "{\n  \"languages\": [\n    \"en\",\n    \"xx\"\n  ],\n  \"sex\": \"male\"\n}",
        );
        assert!(err.contains(r#"fact "languages": "xx" is not"#), "{err}");
        assert!(err.contains("line 5"), "{err}");
        let err = json_error(r#"{"sex": {"a": [1, null]}}"#);
        assert!(
            err.contains(
                r#"fact "sex": expected one of female, male, other; found {"a":[1,null]}"#
            ),
            "{err}"
        );
        let err = json_error(r#"{"sex": 1.5}"#);
        assert!(err.contains("found 1.5"), "{err}");
        let err = json_error(r#"{"sex": -3}"#);
        assert!(err.contains("found -3"), "{err}");
    }

    #[test]
    fn from_a_json_value() {
        let json: Json = serde_json::from_str(FULL_JSON).unwrap();
        assert_eq!(serde_json::from_value::<Facts>(json).unwrap(), full());
        let err = serde_json::from_value::<Facts>(serde_json::json!({"sex": "mal"})).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(r#"fact "sex": expected one of"#),
            "{err}"
        );
        for fact in Fact::ALL.iter().copied() {
            let value = full().get(fact).unwrap();
            let json = serde_json::to_value(value).unwrap();
            assert_eq!(FactValue::from_json(fact, &json).unwrap(), Some(value));
            assert_eq!(FactValue::from_json(fact, &Json::Null).unwrap(), None);
        }
    }

    #[test]
    fn json_long_values_are_clipped_in_errors() {
        let long = "x".repeat(100_000);
        let err = json_error(&format!(r#"{{"sex": "{long}"}}"#));
        assert!(err.len() < 300, "{err}");
        let err = json_error(&format!(r#"{{"{long}": 1}}"#));
        assert!(err.len() < 300, "{err}");
    }

    #[test]
    fn text_round_trip_every_fact() {
        let full = full();
        for fact in Fact::ALL.iter().copied() {
            let value = full.get(fact).unwrap();
            let text = value.to_string();
            assert_eq!(
                FactValue::parse(fact, &text).unwrap(),
                Some(value),
                "{fact}: {text}"
            );
            assert_eq!(FactValue::parse(fact, "").unwrap(), None);
            assert_eq!(FactValue::parse(fact, "  ").unwrap(), None);
            assert_eq!(value.fact_type(), fact.fact_type());
        }
        assert_eq!(full.get(Fact::Languages).unwrap().to_string(), "en;ru");
        assert_eq!(
            full.get(Fact::ObjectionGrounds).unwrap().to_string(),
            "conscience;political"
        );
        assert_eq!(full.get(Fact::BirthDate).unwrap().to_string(), "1990-01-31");
        assert_eq!(full.get(Fact::SummonsReceived).unwrap().to_string(), "true");
        assert_eq!(full.get(Fact::Sex).unwrap().to_string(), "male");
        assert_eq!(full.get(Fact::Nationality).unwrap().to_string(), "RU");
    }

    #[test]
    fn text_parse_forms() {
        let p = |fact, text| FactValue::parse(fact, text);
        assert_eq!(
            p(Fact::Nationality, " ua ").unwrap(),
            Some(FactValue::Country(Country::UA))
        );
        assert_eq!(
            p(Fact::SummonsReceived, "TRUE").unwrap(),
            Some(FactValue::Bool(true))
        );
        assert_eq!(
            p(Fact::SummonsReceived, "false").unwrap(),
            Some(FactValue::Bool(false))
        );
        assert_eq!(
            p(Fact::Languages, "uk; RU").unwrap(),
            Some(FactValue::Languages(
                [Language::UK, Language::RU].into_iter().collect()
            ))
        );
        assert_eq!(
            p(Fact::Documents, "summons;summons").unwrap(),
            Some(FactValue::Documents(
                [DocumentKind::Summons].into_iter().collect()
            ))
        );
        assert_eq!(
            p(Fact::BirthDate, "2000-02-29").unwrap(),
            Some(FactValue::Date(date!(2000 - 02 - 29)))
        );
    }

    #[test]
    fn text_parse_errors() {
        let e = |fact, text| FactValue::parse(fact, text).unwrap_err().to_string();
        assert_eq!(
            e(Fact::Sex, "mal"),
            r#"fact "sex": expected one of female, male, other; found "mal" (did you mean "male"?)"#
        );
        assert_eq!(
            e(Fact::SummonsReceived, "yes"),
            r#"fact "summons_received": expected true or false; found "yes""#
        );
        assert_eq!(
            e(Fact::Nationality, "RUS"),
            r#"fact "nationality": "RUS" is not an ISO 3166-1 alpha-2 country code"#
        );
        assert_eq!(
            e(Fact::Languages, "en;xx"),
            r#"fact "languages": "xx" is not an ISO 639-1 language code"#
        );
        for bad in [
            "1990-13-01",
            "1990-02-30",
            "2023-02-29",
            "90-01-01",
            "1990-1-01",
            "1990/01/01",
            "+1990-01-01",
            "01-01-1990",
            "1990-01-01T00:00",
            "１９９０-01-01",
        ] {
            assert_eq!(
                e(Fact::BirthDate, bad),
                format!(r#"fact "birth_date": expected a date YYYY-MM-DD; found {bad:?}"#)
            );
        }
        let err = FactValue::parse(Fact::Documents, "summons;pasport").unwrap_err();
        assert_eq!(err.fact, Fact::Documents);
        assert!(matches!(err.problem, ValueProblem::Enum(_)));
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("0001-01-01"), Some(date!(0001 - 01 - 01)));
        assert_eq!(parse_date("9999-12-31"), Some(date!(9999 - 12 - 31)));
        assert_eq!(parse_date("2024-02-29"), Some(date!(2024 - 02 - 29)));
        assert_eq!(parse_date("0000-00-00"), None);
        assert_eq!(parse_date(""), None);
        assert_eq!(format_date(date!(0042 - 03 - 04)), "0042-03-04");
    }

    #[test]
    fn get_set_every_fact() {
        let full = full();
        let mut facts = Facts::default();
        for fact in Fact::ALL.iter().copied() {
            assert!(!facts.is_known(fact));
            facts.set(fact, full.get(fact)).unwrap();
            assert!(facts.is_known(fact));
            assert_eq!(facts.get(fact), full.get(fact));
        }
        assert_eq!(facts, full);
        for fact in Fact::ALL.iter().copied() {
            facts.set(fact, None).unwrap();
            assert_eq!(facts.get(fact), None);
        }
        assert_eq!(facts, Facts::default());
    }

    #[test]
    fn set_rejects_the_wrong_type() {
        let mut facts = full();
        let before = facts.clone();
        let err = facts
            .set(Fact::Sex, Some(FactValue::Country(Country::RU)))
            .unwrap_err();
        assert_eq!(err.fact, Fact::Sex);
        assert!(
            err.to_string()
                .starts_with(r#"fact "sex" expects one of female, male, other; got "#)
        );
        // Same underlying type (country), but a different enum is still a mismatch.
        assert!(
            facts
                .set(
                    Fact::Prosecution,
                    Some(FactValue::DeportationOrder(DeportationOrder::None))
                )
                .is_err()
        );
        assert!(
            facts
                .set(Fact::BirthDate, Some(FactValue::Bool(true)))
                .is_err()
        );
        assert_eq!(facts, before);
        // Any country fact takes any country.
        facts
            .set(
                Fact::DeportationDestination,
                Some(FactValue::Country(Country::BY)),
            )
            .unwrap();
        assert_eq!(facts.deportation_destination, Some(Country::BY));
    }

    #[test]
    fn indexes_and_bits() {
        let v = FactValue::Refusal(Refusal::Deserted);
        assert_eq!(v.enum_index(), Some(3));
        assert_eq!(FactValue::from_enum_index(Fact::Refusal, 3), Some(v));
        assert_eq!(FactValue::from_enum_index(Fact::Refusal, 6), None);
        assert_eq!(FactValue::from_enum_index(Fact::Nationality, 0), None);
        assert_eq!(FactValue::Bool(true).enum_index(), None);
        let docs: EnumSet<DocumentKind> = [DocumentKind::MilitaryId].into_iter().collect();
        let v = FactValue::Documents(docs);
        assert_eq!(v.set_bits(), Some(0b100));
        assert_eq!(FactValue::from_set_bits(Fact::Documents, 0b100), Some(v));
        assert_eq!(FactValue::from_set_bits(Fact::Documents, 1 << 7), None);
        assert_eq!(FactValue::from_set_bits(Fact::Sex, 1), None);
        for fact in Fact::ALL.iter().copied() {
            match fact.fact_type() {
                FactType::Enum { values } => {
                    for (i, name) in values.iter().enumerate() {
                        let v = FactValue::from_enum_index(fact, i as u8).unwrap();
                        assert_eq!(v.to_string(), *name);
                        assert_eq!(v.enum_index(), Some(i as u8));
                    }
                }
                FactType::EnumSet { values } => {
                    let all = (1u32 << values.len()) - 1;
                    let v = FactValue::from_set_bits(fact, all).unwrap();
                    assert_eq!(v.to_string(), values.join(";"));
                    assert_eq!(v.set_bits(), Some(all));
                }
                _ => {
                    assert_eq!(FactValue::from_enum_index(fact, 0), None);
                    assert_eq!(FactValue::from_set_bits(fact, 0), None);
                }
            }
        }
    }

    #[test]
    fn ages() {
        let leap = date!(2000 - 02 - 29);
        assert_eq!(age_on(leap, date!(2023 - 02 - 28)), Some(22));
        assert_eq!(age_on(leap, date!(2023 - 03 - 01)), Some(23));
        assert_eq!(age_on(leap, date!(2024 - 02 - 28)), Some(23));
        assert_eq!(age_on(leap, date!(2024 - 02 - 29)), Some(24));
        assert_eq!(age_on(leap, leap), Some(0));
        assert_eq!(age_on(leap, date!(2000 - 02 - 28)), None);
        let b = date!(1990 - 06 - 15);
        assert_eq!(age_on(b, date!(2020 - 06 - 14)), Some(29));
        assert_eq!(age_on(b, date!(2020 - 06 - 15)), Some(30));
        assert_eq!(age_on(b, date!(2020 - 12 - 31)), Some(30));
        assert_eq!(age_on(b, date!(2021 - 01 - 01)), Some(30));
        assert_eq!(age_on(b, date!(1991 - 06 - 14)), Some(0));
        assert_eq!(
            age_on(date!(1999 - 12 - 31), date!(2000 - 01 - 01)),
            Some(0)
        );
        let mut facts = Facts::default();
        assert_eq!(facts.age_on(date!(2020 - 01 - 01)), None);
        facts.birth_date = Some(b);
        assert_eq!(facts.age_on(date!(2025 - 06 - 15)), Some(35));
    }
}
