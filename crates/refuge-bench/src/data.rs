//! Synthetic intake data: persons and facts that look like the caseload refuge is made for
//! (Russian, Belarusian and Ukrainian people who refused military service, now in a transit or
//! host country), generated from a seed so that every run submits the same records.
//!
//! Persons and facts are built as JSON and parsed by refuge-core's own parsers, so the records
//! are exactly what an import or a web form would produce.

use anyhow::{Context, Result};
use refuge_core::application::ProgrammeId;
use refuge_core::facts::Facts;
use refuge_core::ids::OrgId;
use refuge_core::person::Person;
use refuge_store::NewCase;
use serde_json::{Value, json};

/// A small, fast, seeded generator (SplitMix64). Not for anything secret: only synthetic data.
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        // Multiply-shift: the bias is negligible for the small `n` used here.
        let n = n as u128;
        ((u128::from(self.next_u64()) * n) >> 64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.below((hi - lo + 1) as usize) as u32
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u32) -> bool {
        self.below(100) < percent as usize
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// One of `items`, by integer weight.
    pub fn weighted<'a, T>(&mut self, items: &'a [(T, u32)]) -> &'a T {
        let total: u32 = items.iter().map(|(_, w)| *w).sum();
        let mut x = self.below(total as usize) as u32;
        for (item, w) in items {
            if x < *w {
                return item;
            }
            x -= *w;
        }
        &items[items.len() - 1].0
    }

    /// `n` random decimal digits.
    pub fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }

    /// Fill `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let b = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
    }
}

/// A name in Cyrillic and in the Latin transliteration used on passports.
type Pair = (&'static str, &'static str);

/// Names of one nationality: first names and patronymics by sex, surnames as (male, female).
struct Names {
    male: &'static [Pair],
    female: &'static [Pair],
    patronymic_male: &'static [Pair],
    patronymic_female: &'static [Pair],
    surnames: &'static [(Pair, Pair)],
}

const RU: Names = Names {
    male: &[
        ("Александр", "Aleksandr"),
        ("Дмитрий", "Dmitrii"),
        ("Максим", "Maksim"),
        ("Сергей", "Sergei"),
        ("Андрей", "Andrei"),
        ("Алексей", "Aleksei"),
        ("Артём", "Artem"),
        ("Илья", "Ilia"),
        ("Кирилл", "Kirill"),
        ("Михаил", "Mikhail"),
        ("Никита", "Nikita"),
        ("Егор", "Egor"),
        ("Иван", "Ivan"),
        ("Павел", "Pavel"),
        ("Роман", "Roman"),
        ("Тимур", "Timur"),
    ],
    female: &[
        ("Анна", "Anna"),
        ("Мария", "Mariia"),
        ("Екатерина", "Ekaterina"),
        ("Ольга", "Olga"),
        ("Наталья", "Natalia"),
        ("Дарья", "Daria"),
    ],
    patronymic_male: &[
        ("Александрович", "Aleksandrovich"),
        ("Сергеевич", "Sergeevich"),
        ("Владимирович", "Vladimirovich"),
        ("Андреевич", "Andreevich"),
        ("Дмитриевич", "Dmitrievich"),
        ("Игоревич", "Igorevich"),
        ("Николаевич", "Nikolaevich"),
        ("Олегович", "Olegovich"),
    ],
    patronymic_female: &[
        ("Александровна", "Aleksandrovna"),
        ("Сергеевна", "Sergeevna"),
        ("Владимировна", "Vladimirovna"),
        ("Игоревна", "Igorevna"),
    ],
    surnames: &[
        (("Кузнецов", "Kuznetsov"), ("Кузнецова", "Kuznetsova")),
        (("Иванов", "Ivanov"), ("Иванова", "Ivanova")),
        (("Смирнов", "Smirnov"), ("Смирнова", "Smirnova")),
        (("Попов", "Popov"), ("Попова", "Popova")),
        (("Соколов", "Sokolov"), ("Соколова", "Sokolova")),
        (("Лебедев", "Lebedev"), ("Лебедева", "Lebedeva")),
        (("Козлов", "Kozlov"), ("Козлова", "Kozlova")),
        (("Новиков", "Novikov"), ("Новикова", "Novikova")),
        (("Морозов", "Morozov"), ("Морозова", "Morozova")),
        (("Волков", "Volkov"), ("Волкова", "Volkova")),
        (("Фёдоров", "Fedorov"), ("Фёдорова", "Fedorova")),
        (("Зайцев", "Zaitsev"), ("Зайцева", "Zaitseva")),
        (("Белов", "Belov"), ("Белова", "Belova")),
        (("Орлов", "Orlov"), ("Орлова", "Orlova")),
    ],
};

const BY: Names = Names {
    male: &[
        ("Аляксандр", "Aliaksandr"),
        ("Сяргей", "Siarhei"),
        ("Уладзімір", "Uladzimir"),
        ("Павел", "Paval"),
        ("Андрэй", "Andrei"),
        ("Дзмітрый", "Dzmitry"),
        ("Мікалай", "Mikalai"),
        ("Янка", "Yanka"),
    ],
    female: &[
        ("Алеся", "Alesia"),
        ("Вольга", "Volha"),
        ("Святлана", "Sviatlana"),
    ],
    patronymic_male: &[
        ("Аляксандравіч", "Aliaksandravich"),
        ("Сяргеевіч", "Siarheevich"),
        ("Уладзіміравіч", "Uladzimiravich"),
        ("Мікалаевіч", "Mikalaevich"),
    ],
    patronymic_female: &[
        ("Аляксандраўна", "Aliaksandrauna"),
        ("Сяргееўна", "Siarheeuna"),
    ],
    surnames: &[
        (("Лукашэвіч", "Lukashevich"), ("Лукашэвіч", "Lukashevich")),
        (("Навіцкі", "Navitski"), ("Навіцкая", "Navitskaya")),
        (("Казлоў", "Kazlou"), ("Казлова", "Kazlova")),
        (("Шаўчук", "Shauchuk"), ("Шаўчук", "Shauchuk")),
        (("Мельнікаў", "Melnikau"), ("Мельнікава", "Melnikava")),
        (("Кавалёў", "Kavaliou"), ("Кавалёва", "Kavaliova")),
        (("Жук", "Zhuk"), ("Жук", "Zhuk")),
    ],
};

const UA: Names = Names {
    male: &[
        ("Олександр", "Oleksandr"),
        ("Андрій", "Andrii"),
        ("Дмитро", "Dmytro"),
        ("Олексій", "Oleksii"),
        ("Тарас", "Taras"),
        ("Богдан", "Bohdan"),
        ("Микола", "Mykola"),
        ("Юрій", "Yurii"),
    ],
    female: &[("Олена", "Olena"), ("Оксана", "Oksana"), ("Ірина", "Iryna")],
    patronymic_male: &[
        ("Олександрович", "Oleksandrovych"),
        ("Миколайович", "Mykolaiovych"),
        ("Петрович", "Petrovych"),
        ("Іванович", "Ivanovych"),
    ],
    patronymic_female: &[("Олександрівна", "Oleksandrivna"), ("Іванівна", "Ivanivna")],
    surnames: &[
        (("Шевченко", "Shevchenko"), ("Шевченко", "Shevchenko")),
        (("Коваленко", "Kovalenko"), ("Коваленко", "Kovalenko")),
        (("Бондаренко", "Bondarenko"), ("Бондаренко", "Bondarenko")),
        (("Ткаченко", "Tkachenko"), ("Ткаченко", "Tkachenko")),
        (("Мельник", "Melnyk"), ("Мельник", "Melnyk")),
        (("Кравчук", "Kravchuk"), ("Кравчук", "Kravchuk")),
        (("Поліщук", "Polishchuk"), ("Поліщук", "Polishchuk")),
    ],
};

const PSEUDONYMS: &[&str] = &[
    "Heron", "Birch", "Falcon", "Lynx", "Otter", "Rowan", "Swift", "Willow", "Marten", "Crane",
    "Aspen", "Kestrel", "Badger", "Linden", "Sparrow", "Juniper",
];

/// Where people are now, by weight (transit countries first, then EU host countries).
const CURRENT: &[(&str, u32)] = &[
    ("KZ", 22),
    ("GE", 20),
    ("AM", 14),
    ("TR", 10),
    ("MN", 4),
    ("RS", 8),
    ("DE", 9),
    ("NL", 4),
    ("FR", 4),
    ("LT", 5),
];

/// Programmes a case is submitted to, by weight.
pub const PROGRAMMES: &[(&str, u32)] = &[
    ("eu-humanitarian-visa", 30),
    ("de-admission-22", 25),
    ("nl-moratorium", 10),
    ("fr-asylum-objector", 10),
    ("lt-humanitarian-visa", 10),
    ("ge-stay-extension", 15),
];

fn phone_prefix(country: &str) -> &'static str {
    match country {
        "KZ" => "+7 7",
        "GE" => "+995 5",
        "AM" => "+374 9",
        "TR" => "+90 5",
        "MN" => "+976 9",
        "RS" => "+381 6",
        "DE" => "+49 15",
        "NL" => "+31 6",
        "FR" => "+33 6",
        "LT" => "+370 6",
        _ => "+7 9",
    }
}

/// A date `YYYY-MM-DD` in `years`, day 1..=28 so every month is valid.
fn date(rng: &mut Rng, years: (u32, u32)) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        rng.range(years.0, years.1),
        rng.range(1, 12),
        rng.range(1, 28)
    )
}

/// One synthetic intake as JSON, the way an import or the API receives it: the person, the facts
/// keyed by fact name, and the programme it is submitted to.
pub struct IntakeJson {
    /// Pseudonym, names (Cyrillic and Latin), birth date, documents, contacts.
    pub person: Value,
    /// Facts keyed by fact name; some left unknown.
    pub facts: Value,
    /// A programme id.
    pub programme: &'static str,
}

/// One synthetic intake: the new case and the programme it is submitted to.
pub fn intake(rng: &mut Rng, org: OrgId) -> Result<(NewCase, ProgrammeId)> {
    let IntakeJson {
        person,
        facts,
        programme,
    } = intake_json(rng);
    let person: Person =
        serde_json::from_value(person).context("synthetic person does not parse")?;
    let facts: Facts = serde_json::from_value(facts).context("synthetic facts do not parse")?;
    let programme: ProgrammeId = programme
        .parse()
        .context("synthetic programme id does not parse")?;
    Ok((
        NewCase {
            organisation_id: org,
            person,
            facts,
        },
        programme,
    ))
}

/// One synthetic intake as JSON (the same draws, in the same order, as [`intake`]).
pub fn intake_json(rng: &mut Rng) -> IntakeJson {
    let nationality = *rng.weighted(&[("RU", 80u32), ("BY", 12), ("UA", 8)]);
    let names = match nationality {
        "BY" => &BY,
        "UA" => &UA,
        _ => &RU,
    };
    let sex = *rng.weighted(&[("male", 88u32), ("female", 10), ("other", 2)]);
    let female = sex == "female";
    let first = rng.pick(if female { names.female } else { names.male });
    let patronymic = rng.pick(if female {
        names.patronymic_female
    } else {
        names.patronymic_male
    });
    let (male_surname, female_surname) = rng.pick(names.surnames);
    let surname = if female { female_surname } else { male_surname };
    let birth = date(rng, (1980, 2006));
    let current = *rng.weighted(CURRENT);
    let in_eu = matches!(current, "DE" | "NL" | "FR" | "LT");

    // Person: pseudonym, a Cyrillic and a Latin name, birth date, documents, maybe a contact.
    let mut documents = vec![match nationality {
        "BY" => json!({"kind": "international_passport",
                       "number": format!("MP{}", rng.digits(7)), "issuer": "BY"}),
        "UA" => json!({"kind": "international_passport",
                       "number": format!("FE{}", rng.digits(6)), "issuer": "UA"}),
        _ => json!({"kind": "international_passport",
                    "number": format!("{} {}", rng.range(70, 77), rng.digits(7)), "issuer": "RU"}),
    }];
    if rng.chance(45) {
        documents.push(
            match *rng.weighted(&[("internal", 60u32), ("military", 40)]) {
                "internal" => json!({"kind": "internal_passport",
                                 "number": format!("{} {}", rng.digits(4), rng.digits(6)),
                                 "issuer": nationality}),
                _ => json!({"kind": "military_id",
                        "number": format!("{}{} {}", rng.pick(&["А", "В", "К", "М"]),
                                          rng.pick(&["В", "Н", "Р", "С"]), rng.digits(7)),
                        "issuer": nationality}),
            },
        );
    }
    let mut contacts = Vec::new();
    if rng.chance(60) {
        contacts.push(match rng.below(3) {
            0 => json!({"kind": "signal", "value": format!("{}{} {} {}",
                phone_prefix(current), rng.digits(2), rng.digits(3), rng.digits(4))}),
            1 => json!({"kind": "telegram", "value": format!("@{}_{}",
                first.1.to_lowercase(), rng.digits(3))}),
            _ => json!({"kind": "email", "value": format!("{}.{}{}@proton.me",
                first.1.to_lowercase(), surname.1.to_lowercase(), rng.digits(2))}),
        });
    }
    let person = json!({
        "pseudonym": format!("{} {}", rng.pick(PSEUDONYMS), rng.range(1, 999)),
        "names": [
            {"script": "cyrillic", "value": format!("{} {} {}", first.0, patronymic.0, surname.0)},
            {"script": "latin", "value": format!("{} {}", first.1, surname.1)},
        ],
        "birth_date": birth,
        "documents": documents,
        "contacts": contacts,
    });

    // Facts: a plausible, internally consistent situation; some facts left unknown.
    let service = *rng.weighted(&[
        ("none", 35u32),
        ("reservist", 30),
        ("conscript", 10),
        ("contract", 10),
        ("mobilised", 15),
    ]);
    let (refusal, stage) = match service {
        "none" | "reservist" => *rng.weighted(&[
            (("evaded_callup", "before_callup"), 70u32),
            (("objected", "before_callup"), 20),
            (("evaded_callup", "as_reservist"), 10),
        ]),
        "contract" => *rng.weighted(&[
            (("contract_termination_sought", "in_service"), 50u32),
            (("deserted", "in_service"), 35),
            (("refused_orders", "in_service"), 15),
        ]),
        _ => *rng.weighted(&[
            (("deserted", "in_service"), 45u32),
            (("refused_orders", "in_service"), 25),
            (("deserted", "in_training"), 20),
            (("objected", "in_training"), 10),
        ]),
    };
    let mut held = vec!["international_passport"];
    if rng.chance(40) {
        held.push("internal_passport");
    }
    if service != "none" && rng.chance(60) {
        held.push("military_id");
    }
    let summons = service != "none" || rng.chance(55);
    if summons && rng.chance(50) {
        held.push("summons");
    }
    if service == "contract" && rng.chance(50) {
        held.push("contract");
    }
    let prosecution = if matches!(refusal, "deserted" | "refused_orders") {
        *rng.weighted(&[
            ("none", 30u32),
            ("investigated", 30),
            ("charged", 20),
            ("wanted", 20),
        ])
    } else {
        *rng.weighted(&[("none", 85u32), ("investigated", 10), ("wanted", 5)])
    };
    if prosecution != "none" && rng.chance(40) {
        held.push("criminal_case_papers");
    }
    let protest = rng.chance(12);
    if protest && rng.chance(50) {
        held.push("protest_record");
    }
    let stay = if in_eu {
        *rng.weighted(&[
            ("visa", 30u32),
            ("residence_permit", 15),
            ("asylum_seeker", 45),
            ("student", 5),
            ("irregular", 5),
        ])
    } else {
        *rng.weighted(&[
            ("visa_free", 70u32),
            ("residence_permit", 12),
            ("visitor", 8),
            ("irregular", 10),
        ])
    };
    let mut languages = vec![match nationality {
        "BY" => "be",
        "UA" => "uk",
        _ => "ru",
    }];
    if nationality != "RU" {
        languages.push("ru");
    }
    if rng.chance(45) {
        languages.push("en");
    }
    if current == "DE" && rng.chance(30) {
        languages.push("de");
    }
    let mut facts = serde_json::Map::new();
    let mut set = |k: &str, v: Value| {
        facts.insert(k.to_owned(), v);
    };
    set("nationality", nationality.into());
    set("birth_date", birth.into());
    set("sex", sex.into());
    if rng.chance(70) {
        set(
            "profession",
            (*rng.weighted(&[
                ("other", 60u32),
                ("military_technical", 30),
                ("medical", 10),
            ]))
            .into(),
        );
    }
    set("service_status", service.into());
    set("refusal", refusal.into());
    set("refusal_stage", stage.into());
    set("summons_received", summons.into());
    if service == "contract" || rng.chance(30) {
        set("forced_contract", (protest && rng.chance(30)).into());
    }
    if refusal == "objected" || rng.chance(25) {
        let grounds = ["conscience", "religion", "political", "international_law"];
        let n = rng.range(1, 3) as usize;
        let start = rng.below(grounds.len());
        let picked: Vec<&str> = (0..n)
            .map(|i| grounds[(start + i) % grounds.len()])
            .collect();
        set("objection_grounds", json!(picked));
    }
    set("left_origin_on", date(rng, (2022, 2025)).into());
    set("current_country", current.into());
    set("stay_status", stay.into());
    if matches!(stay, "visa_free" | "visa" | "visitor" | "student") && rng.chance(80) {
        set("stay_expires_on", date(rng, (2025, 2027)).into());
    }
    set("documents", json!(held));
    set("prosecution", prosecution.into());
    set("protest_record", protest.into());
    if rng.chance(85) {
        let order = if rng.chance(6) {
            *rng.pick(&["to_origin", "to_third_country"])
        } else {
            "none"
        };
        set("deportation_order", order.into());
        if order == "to_origin" {
            set("deportation_destination", nationality.into());
        }
    }
    set("referred_by_ngo", rng.chance(90).into());
    set(
        "protection_status",
        (if stay == "asylum_seeker" || rng.chance(80) {
            "none"
        } else {
            *rng.pick(&[
                "humanitarian_visa",
                "stay_extension",
                "national_humanitarian",
            ])
        })
        .into(),
    );
    if rng.chance(60) {
        set("exclusion_indicator", false.into());
        set("sanctions_listed", false.into());
    }
    set("languages", json!(languages));

    IntakeJson {
        person,
        facts: Value::Object(facts),
        programme: rng.weighted::<&str>(PROGRAMMES),
    }
}

/// `n` intakes for one writer, from `seed`.
pub fn pool(seed: u64, n: usize, org: OrgId) -> Result<Vec<(NewCase, ProgrammeId)>> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| intake(&mut rng, org)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_valid_varied_records() {
        let org = OrgId(uuid::Uuid::nil());
        let items = pool(7, 2000, org).unwrap();
        let ru = items
            .iter()
            .filter(|(c, _)| c.facts.nationality.map(|n| n.to_string()) == Some("RU".into()))
            .count();
        assert!((1450..1750).contains(&ru), "RU share {ru}/2000");
        assert!(items.iter().all(|(c, _)| c.person.names.len() == 2));
        let docs2 = items
            .iter()
            .filter(|(c, _)| c.person.documents.len() == 2)
            .count();
        assert!(docs2 > 500 && docs2 < 1300, "{docs2}");
        // Same seed, same data.
        let again = pool(7, 3, org).unwrap();
        assert_eq!(again[2].0.person, items[2].0.person);
        assert_eq!(again[2].0.facts, items[2].0.facts);
    }
}
