//! Translations: Fluent files in `locales/<lang>/refuge.ftl`, embedded in the binary, and the
//! choice of language from a `lang` parameter, a cookie or `Accept-Language`.

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use std::collections::BTreeSet;
use unic_langid::LanguageIdentifier;

/// The languages every user-facing string exists in, in the order the switcher shows them.
pub const LANGS: [&str; 5] = ["en", "ru", "uk", "de", "nl"];

/// Each language's own name, for the switcher.
pub fn native_name(lang: &str) -> &'static str {
    match lang {
        "ru" => "Русский",
        "uk" => "Українська",
        "de" => "Deutsch",
        "nl" => "Nederlands",
        _ => "English",
    }
}

/// The embedded Fluent sources, by language.
pub const SOURCES: [(&str, &str); 5] = [
    ("en", include_str!("../../../locales/en/refuge.ftl")),
    ("ru", include_str!("../../../locales/ru/refuge.ftl")),
    ("uk", include_str!("../../../locales/uk/refuge.ftl")),
    ("de", include_str!("../../../locales/de/refuge.ftl")),
    ("nl", include_str!("../../../locales/nl/refuge.ftl")),
];

/// A translation file that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("locales/{lang}/refuge.ftl: {message}")]
pub struct I18nError {
    /// The language.
    pub lang: String,
    /// What is wrong.
    pub message: String,
}

/// Every language's messages.
pub struct I18n {
    bundles: Vec<(&'static str, FluentBundle<FluentResource>, BTreeSet<String>)>,
}

impl std::fmt::Debug for I18n {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("I18n")
            .field(
                "langs",
                &self.bundles.iter().map(|b| b.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl I18n {
    /// The translations built into the binary.
    pub fn embedded() -> Result<I18n, I18nError> {
        I18n::from_sources(&SOURCES)
    }

    /// Translations from Fluent sources, by language (one of [`LANGS`]).
    pub fn from_sources(sources: &[(&'static str, &str)]) -> Result<I18n, I18nError> {
        let mut bundles = Vec::new();
        for (lang, src) in sources {
            let err = |message: String| I18nError {
                lang: (*lang).to_owned(),
                message,
            };
            let resource = FluentResource::try_new((*src).to_owned()).map_err(|(_, errors)| {
                err(errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "))
            })?;
            let keys: BTreeSet<String> = resource
                .entries()
                .filter_map(|e| match e {
                    fluent_syntax::ast::Entry::Message(m) => Some(m.id.name.to_owned()),
                    _ => None,
                })
                .collect();
            let id: LanguageIdentifier = lang.parse().map_err(|_| err("bad language".into()))?;
            let mut bundle = FluentBundle::new_concurrent(vec![id]);
            // No Unicode isolation marks around arguments: HTML needs none.
            bundle.set_use_isolating(false);
            bundle
                .add_resource(resource)
                .map_err(|e| err(format!("{e:?}")))?;
            bundles.push((*lang, bundle, keys));
        }
        Ok(I18n { bundles })
    }

    /// The message ids of one language.
    pub fn keys(&self, lang: &str) -> BTreeSet<String> {
        self.bundles
            .iter()
            .find(|b| b.0 == lang)
            .map(|b| b.2.clone())
            .unwrap_or_default()
    }

    /// Whether `key` exists in `lang`.
    pub fn has(&self, lang: &str, key: &str) -> bool {
        self.bundles
            .iter()
            .find(|b| b.0 == lang)
            .is_some_and(|b| b.1.has_message(key))
    }

    /// The message `key` in `lang` with arguments; English if the language lacks it, and the
    /// key itself if English does too (a test keeps every language complete).
    pub fn format(&self, lang: &str, key: &str, args: &[(&str, String)]) -> String {
        let fargs = (!args.is_empty()).then(|| {
            let mut a = FluentArgs::new();
            for (k, v) in args {
                a.set(*k, FluentValue::from(v.clone()));
            }
            a
        });
        for l in [lang, "en"] {
            let Some((_, bundle, _)) = self.bundles.iter().find(|b| b.0 == l) else {
                continue;
            };
            let Some(pattern) = bundle.get_message(key).and_then(|m| m.value()) else {
                continue;
            };
            let mut errors = Vec::new();
            let text = bundle.format_pattern(pattern, fargs.as_ref(), &mut errors);
            if errors.is_empty() {
                return text.into_owned();
            }
            tracing::warn!(lang = l, key, "translation has errors");
            return text.into_owned();
        }
        tracing::warn!(lang, key, "missing translation");
        key.to_owned()
    }
}

/// Pick a language: the first of `explicit` (a `lang` parameter or cookie) that is supported,
/// else the best match in an `Accept-Language` header, else English.
pub fn negotiate(explicit: &[Option<&str>], accept_language: Option<&str>) -> &'static str {
    for e in explicit.iter().flatten() {
        if let Some(l) = LANGS.iter().find(|l| l.eq_ignore_ascii_case(e.trim())) {
            return l;
        }
    }
    let Some(header) = accept_language else {
        return "en";
    };
    let mut best: Option<(&'static str, f32)> = None;
    for part in header.split(',') {
        let mut bits = part.trim().split(';');
        let tag = bits.next().unwrap_or("").trim();
        let q = bits
            .find_map(|b| b.trim().strip_prefix("q="))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let primary = tag.split(['-', '_']).next().unwrap_or("");
        if let Some(l) = LANGS.iter().find(|l| l.eq_ignore_ascii_case(primary))
            && q > 0.0
            && best.is_none_or(|(_, bq)| q > bq)
        {
            best = Some((l, q));
        }
    }
    best.map_or("en", |b| b.0)
}

/// Translations for one page: what templates call.
#[derive(Clone, Copy)]
pub struct Tr<'a> {
    i18n: &'a I18n,
    /// The page's language.
    pub lang: &'static str,
}

impl<'a> Tr<'a> {
    /// Translations in `lang`.
    pub fn new(i18n: &'a I18n, lang: &'static str) -> Self {
        Tr { i18n, lang }
    }

    /// A message.
    pub fn get(&self, key: &str) -> String {
        self.i18n.format(self.lang, key, &[])
    }

    /// A message with one argument.
    pub fn arg(&self, key: &str, name: &str, value: impl ToString) -> String {
        self.i18n
            .format(self.lang, key, &[(name, value.to_string())])
    }

    /// A message with arguments.
    pub fn args(&self, key: &str, args: &[(&str, String)]) -> String {
        self.i18n.format(self.lang, key, args)
    }

    /// A message whose key is built from parts, e.g. `("v", "refusal", "deserted")` →
    /// `v-refusal-deserted`.
    pub fn key3(&self, a: &str, b: &str, c: &str) -> String {
        self.get(&format!(
            "{a}-{}-{}",
            b.replace('_', "-"),
            c.replace('_', "-")
        ))
    }

    /// A message `a-b` (underscores in `b` become hyphens).
    pub fn key2(&self, a: &str, b: &str) -> String {
        self.get(&format!("{a}-{}", b.replace('_', "-")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_best_supported() {
        assert_eq!(negotiate(&[], Some("ru-RU,ru;q=0.9,en;q=0.8")), "ru");
        assert_eq!(negotiate(&[], Some("fr-FR,de;q=0.5,nl;q=0.7")), "nl");
        assert_eq!(negotiate(&[], Some("uk")), "uk");
        assert_eq!(negotiate(&[], Some("fr")), "en");
        assert_eq!(negotiate(&[], None), "en");
        assert_eq!(negotiate(&[Some("de")], Some("ru")), "de");
        assert_eq!(negotiate(&[Some("xx"), Some("nl")], Some("ru")), "nl");
        assert_eq!(negotiate(&[], Some("ru;q=0,de")), "de");
    }
}
