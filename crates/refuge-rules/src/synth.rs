//! Synthetic caseloads: plausible, invented people who left Russia, Belarus or Ukraine because
//! of military service, for trying programmes and reforms at scale without touching anyone's
//! data.
//!
//! Every distribution, and the source passage or reasoning behind it, is in docs/synth.md;
//! keep the two in step. The generator is deterministic: the same count, seed and date give the
//! same caseload, whatever the number of threads (rows are generated in fixed chunks, each from
//! its own stream of a small seeded generator, SplitMix64). Nobody in it is real.

use crate::caseload::{Caseload, date_to_days, days_to_date};
use refuge_core::country::Country;
use refuge_core::facts::{
    DeportationOrder, DocumentKind, EnumSet, Fact, Facts, ObjectionGround, Profession, Prosecution,
    ProtectionStatus, Refusal, RefusalStage, ServiceStatus, Sex, StayStatus,
};
use refuge_core::language::{Language, LanguageSet};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use time::{Date, Month};

/// People generated from one stream of random numbers.
const CHUNK: usize = 8192;

/// A synthetic caseload of `count` people, as on `on` (ages, stays and expiry dates are
/// relative to it), from `seed`.
pub fn synth(count: usize, seed: u64, on: Date) -> Caseload {
    synth_with_progress(count, seed, on, &|_| {})
}

/// As [`synth`], calling `progress` with the number of people generated so far.
pub fn synth_with_progress(count: usize, seed: u64, on: Date, progress: &dyn Fn(u64)) -> Caseload {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8);
    generate(count, seed, on, threads, progress)
}

fn generate(count: usize, seed: u64, on: Date, threads: usize, progress: &dyn Fn(u64)) -> Caseload {
    let model = Model::new(on);
    let chunks = count.div_ceil(CHUNK);
    let rows_in = |k: usize| CHUNK.min(count - k * CHUNK);
    let mut out = Caseload::with_capacity(count);
    if threads <= 1 || chunks <= 1 {
        for k in 0..chunks {
            out.append(&model.chunk(seed, k, rows_in(k)));
            progress(out.len() as u64);
        }
        return out;
    }
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let (send, receive) = std::sync::mpsc::channel();
        for _ in 0..threads {
            let send = send.clone();
            let (next, model) = (&next, &model);
            scope.spawn(move || {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= chunks || send.send((k, model.chunk(seed, k, rows_in(k)))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(send);
        // Chunks arrive in any order; append them in order.
        let mut pending = BTreeMap::new();
        let mut wanted = 0;
        for (k, chunk) in receive {
            pending.insert(k, chunk);
            while let Some(chunk) = pending.remove(&wanted) {
                out.append(&chunk);
                wanted += 1;
                progress(out.len() as u64);
            }
        }
    });
    out
}

// ---------------------------------------------------------------------------------------------
// Random numbers
// ---------------------------------------------------------------------------------------------

/// SplitMix64: small, fast, and good enough for synthetic data (never for anything secret).
struct Rng(u64);

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// Stream `stream` of `seed`.
    fn new(seed: u64, stream: u64) -> Self {
        Rng(mix(seed ^ 0x5DEE_CE66_D1CE_4E5B) ^ mix(stream.wrapping_add(0x9E37_79B9_7F4A_7C15)))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * u64::from(n)) >> 32) as u32
    }

    /// Uniform in `lo..=hi` (`lo` when `hi < lo`).
    fn range(&mut self, lo: i32, hi: i32) -> i32 {
        let span = u32::try_from(i64::from(hi) - i64::from(lo) + 1).unwrap_or(1);
        lo.saturating_add_unsigned(self.below(span))
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64) * (1.0 / (1u64 << 53) as f64) < p
    }

    /// One of `items`, with probability proportional to its weight.
    fn pick<T: Copy>(&mut self, items: &[(T, u32)]) -> Option<T> {
        let total: u32 = items.iter().map(|(_, w)| *w).sum();
        let mut x = self.below(total);
        for (item, weight) in items {
            if x < *weight {
                return Some(*item);
            }
            x -= weight;
        }
        items.first().map(|(item, _)| *item)
    }
}

// ---------------------------------------------------------------------------------------------
// The model (docs/synth.md)
// ---------------------------------------------------------------------------------------------

/// The country of origin.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Origin {
    Ru,
    By,
    Ua,
}

impl Origin {
    fn country(self) -> Country {
        match self {
            Origin::Ru => Country::RU,
            Origin::By => Country::BY,
            Origin::Ua => Country::UA,
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

const ORIGINS: &[(Origin, u32)] = &[(Origin::Ru, 85), (Origin::By, 10), (Origin::Ua, 5)];

/// Where people from each origin are now, by weight.
const DESTINATIONS: [&[(&str, u32)]; 3] = [
    // Russia: mostly the visa-free neighbours (ENSU: "mostly in Kazakhstan, Georgia and
    // Mongolia"), then Turkey, Serbia, and EU states.
    &[
        ("KZ", 20),
        ("GE", 17),
        ("AM", 10),
        ("TR", 10),
        ("RS", 6),
        ("MN", 4),
        ("KG", 2),
        ("AZ", 2),
        ("DE", 8),
        ("FR", 3),
        ("NL", 3),
        ("FI", 3),
        ("ES", 2),
        ("IT", 1),
        ("CZ", 1),
        ("LT", 1),
        ("PL", 1),
        ("EE", 1),
        ("LV", 1),
        ("HR", 1),
    ],
    // Belarus: mostly the neighbouring EU states.
    &[
        ("PL", 30),
        ("LT", 25),
        ("GE", 12),
        ("DE", 8),
        ("KZ", 5),
        ("TR", 4),
        ("AM", 3),
        ("RS", 3),
        ("LV", 2),
        ("CZ", 2),
        ("NL", 2),
        ("FR", 2),
        ("FI", 1),
        ("EE", 1),
    ],
    // Ukraine: neighbours and EU states.
    &[
        ("PL", 20),
        ("MD", 20),
        ("RO", 15),
        ("DE", 15),
        ("HU", 5),
        ("SK", 5),
        ("CZ", 4),
        ("AT", 3),
        ("NL", 3),
        ("FR", 3),
        ("TR", 3),
        ("LT", 2),
        ("GE", 2),
    ],
];

/// EU member states among the destinations.
const EU: &[&str] = &[
    "AT", "CZ", "DE", "EE", "ES", "FI", "FR", "HR", "HU", "IT", "LT", "LV", "NL", "PL", "RO", "SK",
];

/// Destinations that Russians and Belarusians can enter only with an international passport.
const PASSPORT_NEEDED: &[&str] = &["TR", "RS", "MN"];

/// Third countries a transfer or deportation order sends people to (Dublin transfers to the
/// state of entry; "Sasha": France → Croatia → Bosnia → Russia).
const THIRD_COUNTRIES: &[(&str, u32)] = &[
    ("HR", 30),
    ("PL", 15),
    ("BA", 10),
    ("RS", 10),
    ("LT", 10),
    ("TR", 10),
    ("FI", 5),
    ("GE", 5),
    ("AM", 5),
];

/// The language of each destination.
const LOCAL_LANGUAGES: &[(&str, &str)] = &[
    ("AM", "hy"),
    ("AT", "de"),
    ("AZ", "az"),
    ("CZ", "cs"),
    ("DE", "de"),
    ("EE", "et"),
    ("ES", "es"),
    ("FI", "fi"),
    ("FR", "fr"),
    ("GE", "ka"),
    ("HR", "hr"),
    ("HU", "hu"),
    ("IT", "it"),
    ("KG", "ky"),
    ("KZ", "kk"),
    ("LT", "lt"),
    ("LV", "lv"),
    ("MD", "ro"),
    ("MN", "mn"),
    ("NL", "nl"),
    ("PL", "pl"),
    ("RO", "ro"),
    ("RS", "sr"),
    ("SK", "sk"),
    ("TR", "tr"),
];

/// The languages people of each origin speak, with the share who speak each.
const SPOKEN: [&[(&str, f64)]; 3] = [
    &[
        ("ru", 0.99),
        ("en", 0.45),
        ("uk", 0.05),
        ("tt", 0.03),
        ("be", 0.01),
    ],
    &[
        ("ru", 0.97),
        ("be", 0.35),
        ("en", 0.40),
        ("pl", 0.15),
        ("lt", 0.05),
        ("uk", 0.05),
    ],
    &[
        ("uk", 0.95),
        ("ru", 0.65),
        ("en", 0.35),
        ("pl", 0.05),
        ("de", 0.05),
        ("ro", 0.03),
        ("hu", 0.02),
    ],
];

/// Age bands (inclusive), by weight: men, and women (only those under 45 are subject to
/// mobilisation, with medical or technical professions).
const MALE_AGES: &[((i32, i32), u32)] = &[
    ((18, 27), 35),
    ((28, 35), 30),
    ((36, 45), 22),
    ((46, 60), 13),
];
const FEMALE_AGES: &[((i32, i32), u32)] = &[((18, 27), 35), ((28, 35), 35), ((36, 44), 30)];

/// The share of each fact forgotten at random, so that rules meet unknowns (on top of facts
/// that are unknown by construction: no refusal stage without a refusal, no expiry for an
/// asylum seeker, …).
const FORGOTTEN: &[(Fact, f64)] = &[
    (Fact::Nationality, 0.01),
    (Fact::BirthDate, 0.03),
    (Fact::Sex, 0.01),
    (Fact::Profession, 0.15),
    (Fact::ServiceStatus, 0.03),
    (Fact::Refusal, 0.02),
    (Fact::RefusalStage, 0.04),
    (Fact::SummonsReceived, 0.05),
    (Fact::ForcedContract, 0.08),
    (Fact::ObjectionGrounds, 0.03),
    (Fact::LeftOriginOn, 0.04),
    (Fact::CurrentCountry, 0.01),
    (Fact::StayStatus, 0.03),
    (Fact::StayExpiresOn, 0.04),
    (Fact::Documents, 0.04),
    (Fact::Prosecution, 0.06),
    (Fact::ProtestRecord, 0.05),
    (Fact::DeportationOrder, 0.04),
    (Fact::DeportationDestination, 0.05),
    (Fact::ReferredByNgo, 0.02),
    (Fact::ProtectionStatus, 0.03),
    (Fact::ExclusionIndicator, 0.08),
    (Fact::SanctionsListed, 0.08),
    (Fact::Languages, 0.02),
];

fn country(code: &str) -> Country {
    code.parse().unwrap_or(Country::RU)
}

fn language(code: &str) -> Language {
    code.parse().unwrap_or(Language::RU)
}

fn day(year: i32, month: Month, day: u8) -> i32 {
    Date::from_calendar_date(year, month, day).map_or(0, date_to_days)
}

/// The tables, parsed once, and the evaluation date.
struct Model {
    on: Date,
    on_days: i32,
    destinations: [Vec<(Country, u32)>; 3],
    eu: Vec<Country>,
    passport_needed: Vec<Country>,
    third_countries: Vec<(Country, u32)>,
    local_languages: Vec<(Country, Language)>,
    spoken: [Vec<(Language, f64)>; 3],
    moldova: Country,
    netherlands: Country,
    lithuania: Country,
    /// Leaving dates: from the invasion (or two years back) to the day before `on`.
    window: (i32, i32),
}

impl Model {
    fn new(on: Date) -> Self {
        let on_days = date_to_days(on);
        let end = on_days - 1;
        let invasion = day(2022, Month::February, 24);
        let start = if end - invasion >= 30 {
            invasion
        } else {
            end - 730
        };
        Model {
            on,
            on_days,
            destinations: DESTINATIONS
                .map(|table| table.iter().map(|(code, w)| (country(code), *w)).collect()),
            eu: EU.iter().map(|c| country(c)).collect(),
            passport_needed: PASSPORT_NEEDED.iter().map(|c| country(c)).collect(),
            third_countries: THIRD_COUNTRIES
                .iter()
                .map(|(code, w)| (country(code), *w))
                .collect(),
            local_languages: LOCAL_LANGUAGES
                .iter()
                .map(|(c, l)| (country(c), language(l)))
                .collect(),
            spoken: SPOKEN.map(|table| table.iter().map(|(l, p)| (language(l), *p)).collect()),
            moldova: country("MD"),
            netherlands: country("NL"),
            lithuania: country("LT"),
            window: (start, end),
        }
    }

    /// Chunk `k` of the caseload for `seed`.
    fn chunk(&self, seed: u64, k: usize, rows: usize) -> Caseload {
        let mut rng = Rng::new(seed, k as u64);
        let mut out = Caseload::with_capacity(rows);
        for _ in 0..rows {
            out.push(&self.person(&mut rng).unwrap_or_default());
        }
        out
    }

    /// A birth date at which someone is exactly `age` on the evaluation date, uniformly.
    fn birth_date(&self, rng: &mut Rng, age: i32) -> Option<Date> {
        // Someone is `age` on `on` if born after the date `age + 1` years before (clamping
        // 29 February to the 28th), up to the date `age` years before.
        let same_day = |year: i32| {
            Date::from_calendar_date(year, self.on.month(), self.on.day())
                .or_else(|_| {
                    Date::from_calendar_date(year, self.on.month(), self.on.day().saturating_sub(1))
                })
                .ok()
        };
        let year = self.on.year() - age;
        let latest = date_to_days(same_day(year)?);
        let earliest = date_to_days(same_day(year - 1)?) + 1;
        days_to_date(rng.range(earliest, latest))
    }

    /// When the person left the country of origin: waves after the invasion (24 February
    /// 2022) and the mobilisation order (21 September 2022) for Russians, later for
    /// deserters, otherwise spread over the window; never before about age 17.
    fn left_origin(
        &self,
        rng: &mut Rng,
        origin: Origin,
        refusal: Refusal,
        birth: Option<Date>,
    ) -> Option<Date> {
        let (start, end) = self.window;
        let adult = birth.map_or(start, |b| date_to_days(b) + 17 * 365 + 4);
        let lo = start.max(adult).min(end);
        let within = |rng: &mut Rng, a: i32, b: i32| {
            let (a, b) = (a.max(lo), b.min(end));
            if a > b {
                rng.range(lo, end)
            } else {
                rng.range(a, b)
            }
        };
        let days = match (origin, refusal) {
            (_, Refusal::Deserted | Refusal::RefusedOrders) => {
                within(rng, day(2022, Month::June, 1), end)
            }
            (Origin::Ru, _) => {
                let wave = rng.below(100);
                if wave < 20 {
                    within(
                        rng,
                        day(2022, Month::February, 24),
                        day(2022, Month::April, 30),
                    )
                } else if wave < 70 {
                    within(
                        rng,
                        day(2022, Month::September, 21),
                        day(2022, Month::October, 31),
                    )
                } else {
                    within(rng, lo, end)
                }
            }
            _ => within(rng, lo, end),
        };
        days_to_date(days)
    }

    fn third_country(&self, rng: &mut Rng, here: Country, origin: Country) -> Option<Country> {
        let first = rng.pick(&self.third_countries)?;
        if first != here && first != origin {
            return Some(first);
        }
        self.third_countries
            .iter()
            .map(|(c, _)| *c)
            .find(|c| *c != here && *c != origin)
    }

    /// One person (`None` only if a table is empty, which the tests rule out).
    fn person(&self, rng: &mut Rng) -> Option<Facts> {
        use DocumentKind as Doc;
        use ProtectionStatus as Protection;
        use ServiceStatus as Service;
        use StayStatus as Stay;

        let origin = rng.pick(ORIGINS)?;
        let nationality = origin.country();
        let sex = rng.pick(&[(Sex::Male, 900), (Sex::Female, 95), (Sex::Other, 5)])?;
        let female = sex == Sex::Female;
        let professions: &[(Profession, u32)] = if female {
            &[
                (Profession::Medical, 30),
                (Profession::MilitaryTechnical, 10),
                (Profession::Other, 60),
            ]
        } else {
            &[
                (Profession::Medical, 2),
                (Profession::MilitaryTechnical, 5),
                (Profession::Other, 93),
            ]
        };
        let profession = rng.pick(professions)?;

        let refusals: &[(Refusal, u32)] = match (origin, female) {
            (Origin::Ua, _) => &[
                (Refusal::EvadedCallup, 60),
                (Refusal::Objected, 30),
                (Refusal::Deserted, 7),
                (Refusal::RefusedOrders, 3),
            ],
            (_, true) => &[
                (Refusal::None, 50),
                (Refusal::EvadedCallup, 30),
                (Refusal::Objected, 15),
                (Refusal::Deserted, 3),
                (Refusal::ContractTerminationSought, 2),
            ],
            _ => &[
                (Refusal::EvadedCallup, 68),
                (Refusal::Objected, 10),
                (Refusal::Deserted, 7),
                (Refusal::RefusedOrders, 3),
                (Refusal::ContractTerminationSought, 3),
                (Refusal::None, 9),
            ],
        };
        let refusal = rng.pick(refusals)?;

        let services: &[(Service, u32)] = match refusal {
            Refusal::None => &[(Service::None, 60), (Service::Reservist, 40)],
            Refusal::EvadedCallup => &[(Service::None, 45), (Service::Reservist, 55)],
            Refusal::Objected => &[
                (Service::None, 40),
                (Service::Reservist, 20),
                (Service::Conscript, 25),
                (Service::Contract, 8),
                (Service::Mobilised, 7),
            ],
            Refusal::Deserted => &[
                (Service::Conscript, 20),
                (Service::Contract, 35),
                (Service::Mobilised, 45),
            ],
            Refusal::RefusedOrders => &[
                (Service::Conscript, 10),
                (Service::Contract, 45),
                (Service::Mobilised, 45),
            ],
            Refusal::ContractTerminationSought => {
                &[(Service::Contract, 80), (Service::Mobilised, 20)]
            }
        };
        let mut service = rng.pick(services)?;
        if female && service == Service::Conscript {
            // Women are not conscripted; those who served did so under contract.
            service = Service::Contract;
        }

        let age = if service == Service::Conscript {
            rng.range(18, 27)
        } else {
            let (lo, hi) = rng.pick(if female { FEMALE_AGES } else { MALE_AGES })?;
            let age = rng.range(lo, hi);
            if service == Service::Reservist && age < 20 {
                rng.range(20, 27)
            } else {
                age
            }
        };
        let birth_date = self.birth_date(rng, age);

        let refusal_stage = match (refusal, service) {
            (Refusal::None, _) => None,
            (_, Service::None) => Some(RefusalStage::BeforeCallup),
            (_, Service::Reservist) => Some(RefusalStage::AsReservist),
            (_, Service::Conscript) => rng.pick(&[
                (RefusalStage::InTraining, 40),
                (RefusalStage::InService, 60),
            ]),
            (_, Service::Contract) => rng.pick(&[
                (RefusalStage::InService, 90),
                (RefusalStage::InTraining, 10),
            ]),
            (_, Service::Mobilised) => rng.pick(&[
                (RefusalStage::InTraining, 35),
                (RefusalStage::InService, 65),
            ]),
        };

        let protest_record = rng.chance(match origin {
            Origin::Ru => 0.06,
            Origin::By => 0.12,
            Origin::Ua => 0.005,
        });
        let summons_received = rng.chance(match (refusal, service) {
            (Refusal::EvadedCallup, Service::Reservist) => 0.70,
            (Refusal::EvadedCallup, _) => 0.40,
            (Refusal::Objected, _) => 0.50,
            (
                Refusal::Deserted | Refusal::RefusedOrders,
                Service::Conscript | Service::Mobilised,
            ) => 0.95,
            (Refusal::Deserted | Refusal::RefusedOrders, _) => 0.15,
            (Refusal::ContractTerminationSought, _) => 0.20,
            (Refusal::None, _) => 0.15,
        });
        let forced_contract = rng.chance(match service {
            Service::Contract if protest_record => 0.40,
            Service::Contract => 0.15,
            Service::Mobilised => 0.03,
            _ => 0.005,
        });

        let grounds = |rng: &mut Rng, odds: &[(ObjectionGround, f64)]| {
            let mut set = EnumSet::new();
            for (ground, p) in odds {
                if rng.chance(*p) {
                    set.insert(*ground);
                }
            }
            if let (true, Some((ground, _))) = (set.is_empty(), odds.first()) {
                set.insert(*ground);
            }
            set
        };
        let objection_grounds = match refusal {
            Refusal::Objected => Some(grounds(
                rng,
                &[
                    (ObjectionGround::Conscience, 0.60),
                    (ObjectionGround::Political, 0.45),
                    (ObjectionGround::Religion, 0.12),
                    (
                        ObjectionGround::FamilyTies,
                        if origin == Origin::Ua { 0.10 } else { 0.20 },
                    ),
                    (ObjectionGround::InternationalLaw, 0.25),
                ],
            )),
            Refusal::Deserted | Refusal::RefusedOrders if rng.chance(0.35) => Some(grounds(
                rng,
                &[
                    (ObjectionGround::Political, 0.50),
                    (ObjectionGround::InternationalLaw, 0.50),
                    (ObjectionGround::Conscience, 0.40),
                ],
            )),
            _ if rng.chance(0.10) => Some(grounds(
                rng,
                &[
                    (ObjectionGround::Political, 0.60),
                    (ObjectionGround::Conscience, 0.60),
                ],
            )),
            _ => None,
        };

        let left_origin_on = self.left_origin(rng, origin, refusal, birth_date);

        let current_country = rng.pick(self.destinations.get(origin.slot())?)?;
        let in_eu = self.eu.contains(&current_country);
        let stays: &[(Stay, u32)] = match (origin, in_eu) {
            (Origin::Ua, _) => &[
                (Stay::ResidencePermit, 45),
                (Stay::VisaFree, 25),
                (Stay::AsylumSeeker, 20),
                (Stay::Irregular, 10),
            ],
            (_, true) => &[
                (Stay::AsylumSeeker, 40),
                (Stay::Visa, 18),
                (Stay::Student, 10),
                (Stay::Visitor, 8),
                (Stay::ResidencePermit, 16),
                (Stay::Irregular, 8),
            ],
            (_, false) => &[
                (Stay::VisaFree, 72),
                (Stay::ResidencePermit, 18),
                (Stay::Visa, 3),
                (Stay::AsylumSeeker, 2),
                (Stay::Irregular, 5),
            ],
        };
        let stay_status = rng.pick(stays)?;

        let moratorium = origin == Origin::Ru
            && sex == Sex::Male
            && (18..=27).contains(&age)
            && current_country == self.netherlands;
        let protections: &[(Protection, u32)] = match stay_status {
            Stay::AsylumSeeker if moratorium => {
                &[(Protection::Moratorium, 85), (Protection::None, 15)]
            }
            Stay::ResidencePermit if origin == Origin::Ua => &[
                (Protection::None, 70),
                (Protection::Subsidiary, 10),
                (Protection::NationalHumanitarian, 20),
            ],
            Stay::ResidencePermit if in_eu => &[
                (Protection::Refugee, 30),
                (Protection::Subsidiary, 20),
                (Protection::NationalHumanitarian, 25),
                (Protection::None, 25),
            ],
            Stay::Visa if in_eu => &[(Protection::HumanitarianVisa, 30), (Protection::None, 70)],
            Stay::Visa => &[(Protection::HumanitarianVisa, 5), (Protection::None, 95)],
            Stay::Student | Stay::Visitor => {
                &[(Protection::StayExtension, 15), (Protection::None, 85)]
            }
            Stay::VisaFree => &[(Protection::HumanitarianVisa, 1), (Protection::None, 99)],
            _ => &[(Protection::None, 1)],
        };
        let protection_status = rng.pick(protections)?;

        let stay_expires_on = match stay_status {
            Stay::Visa | Stay::Student | Stay::Visitor => Some(rng.range(1, 365)),
            Stay::VisaFree => Some(rng.range(1, 90)),
            Stay::ResidencePermit => Some(rng.range(30, 3 * 365)),
            Stay::AsylumSeeker | Stay::Irregular => None,
        }
        .and_then(|d| days_to_date(self.on_days + d));

        let prosecutions: &[(Prosecution, u32)] = match refusal {
            Refusal::Deserted => &[
                (Prosecution::None, 25),
                (Prosecution::Investigated, 20),
                (Prosecution::Charged, 20),
                (Prosecution::Convicted, 5),
                (Prosecution::Wanted, 30),
            ],
            Refusal::RefusedOrders => &[
                (Prosecution::None, 30),
                (Prosecution::Investigated, 25),
                (Prosecution::Charged, 20),
                (Prosecution::Convicted, 10),
                (Prosecution::Wanted, 15),
            ],
            Refusal::EvadedCallup => &[
                (Prosecution::None, 88),
                (Prosecution::Investigated, 6),
                (Prosecution::Charged, 2),
                (Prosecution::Convicted, 1),
                (Prosecution::Wanted, 3),
            ],
            Refusal::Objected => &[
                (Prosecution::None, 82),
                (Prosecution::Investigated, 8),
                (Prosecution::Charged, 5),
                (Prosecution::Convicted, 3),
                (Prosecution::Wanted, 2),
            ],
            Refusal::ContractTerminationSought => &[
                (Prosecution::None, 70),
                (Prosecution::Investigated, 15),
                (Prosecution::Charged, 10),
                (Prosecution::Wanted, 5),
            ],
            Refusal::None => &[
                (Prosecution::None, 97),
                (Prosecution::Investigated, 2),
                (Prosecution::Wanted, 1),
            ],
        };
        let mut prosecution = rng.pick(prosecutions)?;
        if protest_record && prosecution == Prosecution::None && rng.chance(0.35) {
            prosecution = rng.pick(&[
                (Prosecution::Investigated, 50),
                (Prosecution::Charged, 30),
                (Prosecution::Convicted, 20),
            ])?;
        }

        let belarusian_in_lithuania = origin == Origin::By && current_country == self.lithuania;
        let orders: &[(DeportationOrder, u32)] = match stay_status {
            _ if belarusian_in_lithuania => &[
                (DeportationOrder::None, 80),
                (DeportationOrder::ToOrigin, 15),
                (DeportationOrder::ToThirdCountry, 5),
            ],
            Stay::Irregular => &[
                (DeportationOrder::None, 75),
                (DeportationOrder::ToOrigin, 15),
                (DeportationOrder::ToThirdCountry, 10),
            ],
            Stay::AsylumSeeker => &[
                (DeportationOrder::None, 90),
                (DeportationOrder::ToThirdCountry, 7),
                (DeportationOrder::ToOrigin, 3),
            ],
            _ => &[
                (DeportationOrder::None, 98),
                (DeportationOrder::ToOrigin, 1),
                (DeportationOrder::ToThirdCountry, 1),
            ],
        };
        let deportation_order = rng.pick(orders)?;
        let deportation_destination = match deportation_order {
            DeportationOrder::None => None,
            DeportationOrder::ToOrigin => Some(nationality),
            DeportationOrder::ToThirdCountry => {
                self.third_country(rng, current_country, nationality)
            }
        };

        let mut documents = EnumSet::new();
        let mut maybe = |rng: &mut Rng, p: f64, doc: Doc| {
            if rng.chance(p) {
                documents.insert(doc);
            }
        };
        maybe(
            rng,
            if origin == Origin::Ua { 0.80 } else { 0.85 },
            Doc::InternalPassport,
        );
        let international = if in_eu || self.passport_needed.contains(&current_country) {
            if in_eu { 0.90 } else { 0.95 }
        } else if current_country == self.moldova {
            0.70
        } else {
            // Kazakhstan, Kyrgyzstan, Georgia, Armenia, Azerbaijan: reachable without one.
            0.55
        };
        maybe(rng, international, Doc::InternationalPassport);
        let military_id = match (refusal, service) {
            (
                Refusal::Deserted | Refusal::RefusedOrders | Refusal::ContractTerminationSought,
                _,
            )
            | (_, Service::Contract | Service::Mobilised) => 0.70,
            (_, Service::Reservist) => 0.60,
            (_, Service::Conscript) => 0.40,
            (_, Service::None) => 0.05,
        };
        maybe(rng, military_id, Doc::MilitaryId);
        if summons_received {
            maybe(rng, 0.45, Doc::Summons);
        }
        if service == Service::Contract {
            maybe(rng, 0.35, Doc::Contract);
        }
        let case_papers = match prosecution {
            Prosecution::Charged | Prosecution::Convicted | Prosecution::Wanted => 0.40,
            Prosecution::Investigated => 0.15,
            Prosecution::None => 0.0,
        };
        maybe(rng, case_papers, Doc::CriminalCasePapers);
        if protest_record {
            maybe(rng, 0.50, Doc::ProtestRecord);
        }
        // CSV has no form for a known empty set: leave "no documents" unknown.
        let documents = (!documents.is_empty()).then_some(documents);

        let referred_by_ngo = rng.chance(if in_eu { 0.25 } else { 0.15 });
        let exclusion_indicator = rng.chance(
            if matches!(refusal, Refusal::Deserted | Refusal::RefusedOrders)
                || service == Service::Contract
            {
                0.015
            } else {
                0.001
            },
        );
        let sanctions_listed = rng.chance(0.0005);

        let mut languages = LanguageSet::new();
        let spoken = self.spoken.get(origin.slot())?;
        for (l, p) in spoken {
            if rng.chance(*p) {
                languages.insert(*l);
            }
        }
        if let Some((_, local)) = self
            .local_languages
            .iter()
            .find(|(c, _)| *c == current_country)
            && rng.chance(if in_eu { 0.15 } else { 0.05 })
        {
            languages.insert(*local);
        }
        if languages.is_empty()
            && let Some((first, _)) = spoken.first()
        {
            languages.insert(*first);
        }

        let mut facts = Facts {
            nationality: Some(nationality),
            birth_date,
            sex: Some(sex),
            profession: Some(profession),
            service_status: Some(service),
            refusal: Some(refusal),
            refusal_stage,
            summons_received: Some(summons_received),
            forced_contract: Some(forced_contract),
            objection_grounds,
            left_origin_on,
            current_country: Some(current_country),
            stay_status: Some(stay_status),
            stay_expires_on,
            documents,
            prosecution: Some(prosecution),
            protest_record: Some(protest_record),
            deportation_order: Some(deportation_order),
            deportation_destination,
            referred_by_ngo: Some(referred_by_ngo),
            protection_status: Some(protection_status),
            exclusion_indicator: Some(exclusion_indicator),
            sanctions_listed: Some(sanctions_listed),
            languages: Some(languages),
        };
        for (fact, p) in FORGOTTEN {
            if rng.chance(*p) {
                // Setting a fact to unknown cannot fail.
                let _ = facts.set(*fact, None);
            }
        }
        Some(facts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use refuge_core::facts::{FactType, age_on};
    use time::macros::date;

    const ON: Date = date!(2025 - 06 - 15);

    #[test]
    fn tables_are_valid() {
        for table in DESTINATIONS {
            for (code, _) in table {
                assert!(code.parse::<Country>().is_ok(), "{code}");
            }
        }
        for code in EU.iter().chain(PASSPORT_NEEDED) {
            assert!(code.parse::<Country>().is_ok(), "{code}");
        }
        for (code, _) in THIRD_COUNTRIES {
            assert!(code.parse::<Country>().is_ok(), "{code}");
        }
        for (c, l) in LOCAL_LANGUAGES {
            assert!(c.parse::<Country>().is_ok(), "{c}");
            assert!(l.parse::<Language>().is_ok(), "{l}");
        }
        for table in SPOKEN {
            for (l, _) in table {
                assert!(l.parse::<Language>().is_ok(), "{l}");
            }
        }
        // Every destination has a language; every EU destination is listed as EU.
        for table in DESTINATIONS {
            for (code, _) in table {
                assert!(LOCAL_LANGUAGES.iter().any(|(c, _)| c == code), "{code}");
            }
        }
        assert_eq!(FORGOTTEN.len(), Fact::ALL.len());
        for (i, (fact, _)) in FORGOTTEN.iter().enumerate() {
            assert_eq!(*fact, Fact::ALL[i]);
        }
    }

    #[test]
    fn deterministic_for_a_seed_whatever_the_threads() {
        let a = generate(20_000, 7, ON, 1, &|_| {});
        let b = generate(20_000, 7, ON, 3, &|_| {});
        assert_eq!(a.len(), 20_000);
        assert_eq!(a, b);
        assert_eq!(synth(20_000, 7, ON), a);
        let c = synth(20_000, 8, ON);
        assert_ne!(a, c);
        // A shorter caseload is a prefix of a longer one.
        let short = synth(10_000, 7, ON);
        for row in [0, 8191, 8192, 9999] {
            assert_eq!(short.row(row), a.row(row));
        }
        assert!(synth(0, 1, ON).is_empty());
    }

    #[test]
    fn progress_counts_rows() {
        let seen = std::cell::Cell::new(0);
        let c = synth_with_progress(30_000, 1, ON, &|n| seen.set(n));
        assert_eq!(seen.get(), 30_000);
        assert_eq!(c.len(), 30_000);
    }

    fn share(c: &Caseload, fact: Fact, value: &str) -> f64 {
        let index = fact
            .fact_type()
            .values()
            .iter()
            .position(|v| *v == value)
            .unwrap() as u8;
        let column = c.enums(fact);
        let known = column.iter().filter(|x| **x != u8::MAX).count();
        column.iter().filter(|x| **x == index).count() as f64 / known as f64
    }

    fn country_share(c: &Caseload, fact: Fact, code: &str) -> f64 {
        let index = code.parse::<Country>().unwrap().index();
        let column = c.countries(fact);
        let known = column.iter().filter(|x| **x != u16::MAX).count();
        column.iter().filter(|x| **x == index).count() as f64 / known as f64
    }

    fn near(found: f64, expected: f64, tolerance: f64, what: &str) {
        assert!(
            (found - expected).abs() <= tolerance,
            "{what}: {found:.4}, expected {expected} ± {tolerance}"
        );
    }

    #[test]
    fn proportions_on_100_000() {
        let c = synth(100_000, 1, ON);
        near(country_share(&c, Fact::Nationality, "RU"), 0.85, 0.01, "RU");
        near(country_share(&c, Fact::Nationality, "BY"), 0.10, 0.01, "BY");
        near(
            country_share(&c, Fact::Nationality, "UA"),
            0.05,
            0.005,
            "UA",
        );
        near(share(&c, Fact::Sex, "male"), 0.90, 0.01, "male");
        near(
            share(&c, Fact::Refusal, "evaded_callup"),
            0.64,
            0.02,
            "evaded",
        );
        near(
            share(&c, Fact::Refusal, "objected"),
            0.115,
            0.01,
            "objected",
        );
        near(
            share(&c, Fact::Refusal, "deserted"),
            0.067,
            0.01,
            "deserted",
        );
        near(
            share(&c, Fact::Profession, "medical"),
            0.046,
            0.01,
            "medical",
        );
        near(
            share(&c, Fact::Profession, "military_technical"),
            0.054,
            0.01,
            "technical",
        );
        near(
            country_share(&c, Fact::CurrentCountry, "KZ"),
            0.18,
            0.02,
            "in KZ",
        );
        near(
            country_share(&c, Fact::CurrentCountry, "GE"),
            0.16,
            0.02,
            "in GE",
        );
        near(
            share(&c, Fact::StayStatus, "visa_free"),
            0.50,
            0.06,
            "visa_free",
        );
        near(
            share(&c, Fact::Prosecution, "none"),
            0.84,
            0.04,
            "not prosecuted",
        );
        near(
            share(&c, Fact::DeportationOrder, "none"),
            0.95,
            0.03,
            "no order",
        );
        let protests = c.bools(Fact::ProtestRecord);
        let known = protests.iter().filter(|x| **x != 2).count();
        let yes = protests.iter().filter(|x| **x == 1).count();
        near(yes as f64 / known as f64, 0.066, 0.01, "protest record");
        // Rare flags are rare but present.
        for fact in [Fact::ExclusionIndicator, Fact::SanctionsListed] {
            let yes = c.bools(fact).iter().filter(|x| **x == 1).count();
            assert!(yes > 0 && yes < 1_000, "{fact}: {yes}");
        }
        // Ages at ON: 18–60, mostly 18–45.
        let mut young = 0;
        let mut known = 0;
        for row in 0..c.len() {
            if let Some(refuge_core::facts::FactValue::Date(b)) = c.get(row, Fact::BirthDate) {
                let age = age_on(b, ON).unwrap();
                assert!((18..=60).contains(&age), "row {row}: age {age}");
                known += 1;
                young += usize::from(age <= 45);
            }
        }
        near(young as f64 / known as f64, 0.88, 0.02, "aged 18–45");
        // Languages: mostly Russian.
        let languages = c.languages();
        let known = (0..c.len()).filter(|r| languages.is_known(*r)).count();
        let russian = (0..c.len())
            .filter(|r| languages.contains(*r, Language::RU) == Some(true))
            .count();
        near(russian as f64 / known as f64, 0.95, 0.03, "speaks ru");
        // Every fact is sometimes unknown, and mostly known where it applies.
        for fact in Fact::ALL {
            let unknown = c.len() - c.known(*fact);
            assert!(unknown >= 500, "{fact}: {unknown} unknown");
        }
        for fact in [Fact::Nationality, Fact::Sex, Fact::CurrentCountry] {
            near(
                1.0 - c.known(fact) as f64 / c.len() as f64,
                0.01,
                0.002,
                fact.name(),
            );
        }
        near(
            1.0 - c.known(Fact::Profession) as f64 / c.len() as f64,
            0.15,
            0.01,
            "profession",
        );
    }

    #[test]
    fn every_value_is_valid_and_consistent() {
        use DeportationOrder as D;
        use ServiceStatus as S;
        let c = synth(50_000, 3, ON);
        // Valid encodings: the binary reader checks every value.
        let mut bytes = Vec::new();
        c.write_binary(&mut bytes, &|_| {}).unwrap();
        assert_eq!(Caseload::from_binary_bytes(&bytes).unwrap(), c);
        // No known empty sets, so CSV keeps everything.
        let mut text = Vec::new();
        c.write_csv(&mut text, &|_| {}).unwrap();
        assert_eq!(Caseload::from_csv_bytes(&text, &|_| {}).unwrap(), c);
        let eu: Vec<Country> = EU.iter().map(|x| x.parse().unwrap()).collect();
        let nl: Country = "NL".parse().unwrap();
        for row in 0..c.len() {
            let f = c.row(row).unwrap();
            for fact in Fact::ALL {
                if let (FactType::EnumSet { .. }, Some(v)) = (fact.fact_type(), f.get(*fact)) {
                    assert_ne!(v.set_bits(), Some(0), "row {row}: {fact} known empty");
                }
            }
            if let Some(l) = f.languages {
                assert!(!l.is_empty());
            }
            match (f.refusal, f.service_status) {
                (Some(Refusal::Deserted | Refusal::RefusedOrders), Some(s)) => {
                    assert!(
                        matches!(s, S::Conscript | S::Contract | S::Mobilised),
                        "row {row}"
                    )
                }
                (Some(Refusal::EvadedCallup), Some(s)) => {
                    assert!(matches!(s, S::None | S::Reservist), "row {row}")
                }
                (Some(Refusal::ContractTerminationSought), Some(s)) => {
                    assert!(matches!(s, S::Contract | S::Mobilised), "row {row}")
                }
                _ => {}
            }
            if f.refusal == Some(Refusal::None) {
                assert_eq!(f.refusal_stage, None, "row {row}");
            }
            if f.refusal == Some(Refusal::Objected) {
                assert!(f.objection_grounds.is_some() || c.known(Fact::ObjectionGrounds) > 0);
            }
            match (f.service_status, f.refusal_stage) {
                (Some(S::None), Some(stage)) => assert_eq!(stage, RefusalStage::BeforeCallup),
                (Some(S::Reservist), Some(stage)) => assert_eq!(stage, RefusalStage::AsReservist),
                (Some(_), Some(stage)) => assert!(
                    matches!(stage, RefusalStage::InTraining | RefusalStage::InService),
                    "row {row}"
                ),
                _ => {}
            }
            if f.sex == Some(Sex::Female) {
                assert_ne!(f.service_status, Some(S::Conscript), "row {row}");
            }
            if let (Some(S::Conscript), Some(b)) = (f.service_status, f.birth_date) {
                assert!(age_on(b, ON).unwrap() <= 27, "row {row}");
            }
            if let Some(left) = f.left_origin_on {
                assert!(
                    left < ON && left >= date!(2022 - 02 - 24),
                    "row {row}: {left}"
                );
                if let Some(b) = f.birth_date {
                    assert!(age_on(b, left).unwrap() >= 16, "row {row}");
                }
            }
            if let (Some(stay), Some(expires)) = (f.stay_status, f.stay_expires_on) {
                assert!(expires > ON, "row {row}");
                if matches!(
                    stay,
                    StayStatus::Visa | StayStatus::Student | StayStatus::Visitor
                ) {
                    assert!(expires <= ON + time::Duration::days(365), "row {row}");
                }
                assert!(!matches!(
                    stay,
                    StayStatus::AsylumSeeker | StayStatus::Irregular
                ));
            }
            if let Some(destination) = f.deportation_destination {
                assert_ne!(f.deportation_order, Some(D::None), "row {row}");
                assert_ne!(Some(destination), f.current_country, "row {row}");
                if f.deportation_order == Some(D::ToOrigin) && f.nationality.is_some() {
                    assert_eq!(Some(destination), f.nationality, "row {row}");
                }
            }
            if f.deportation_order == Some(D::None) {
                assert_eq!(f.deportation_destination, None, "row {row}");
            }
            if let (Some(ProtectionStatus::Moratorium), Some(here)) =
                (f.protection_status, f.current_country)
            {
                assert_eq!(here, nl, "row {row}");
            }
            if let (Some(here), Some(StayStatus::VisaFree), Some(Country::RU | Country::BY)) =
                (f.current_country, f.stay_status, f.nationality)
            {
                assert!(!eu.contains(&here), "row {row}: visa-free in {here}");
            }
        }
    }

    #[test]
    fn birth_dates_give_exact_ages_even_on_29_february() {
        for on in [
            date!(2024 - 02 - 29),
            date!(2025 - 03 - 01),
            date!(2025 - 12 - 31),
        ] {
            let model = Model::new(on);
            let mut rng = Rng::new(1, 1);
            for age in 18..=60 {
                for _ in 0..200 {
                    let b = model.birth_date(&mut rng, age).unwrap();
                    assert_eq!(age_on(b, on), Some(age as u32), "{on} {b}");
                }
            }
        }
        // An evaluation date before the invasion still gives leaving dates before it.
        let c = synth(1_000, 1, date!(2021 - 01 - 01));
        for row in 0..c.len() {
            if let Some(refuge_core::facts::FactValue::Date(left)) = c.get(row, Fact::LeftOriginOn)
            {
                assert!(left < date!(2021 - 01 - 01));
            }
        }
    }
}
