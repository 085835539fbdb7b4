//! What kind of place a name is, where a reader can tell: the text says so ("the city of
//! Dijon", "the municipality of Gettysburg"), or the name is a country's, the one kind a
//! reader knows without being told, because the list is short, closed and the same in every
//! domain. Entry point: [`place_kind`].
//!
//! The pipeline uses it to choose between a schema's general place relation ("located in the
//! place given by the object") and the one for that kind ("located in the city given by the
//! object") when the model wrote the general one: a definition that names the object's kind
//! fits better than one that does not.

/// Country names in English as texts write them, with the common short forms; compared by
/// [`tessera_storage::name_key`] (no case, spacing or punctuation), after a leading "the".
#[rustfmt::skip]
const COUNTRIES: &[&str] = &[
    "Afghanistan", "Albania", "Algeria", "Andorra", "Angola", "Antigua and Barbuda", "Argentina",
    "Armenia", "Australia", "Austria", "Azerbaijan", "Bahamas", "Bahrain", "Bangladesh", "Barbados",
    "Belarus", "Belgium", "Belize", "Benin", "Bhutan", "Bolivia", "Bosnia and Herzegovina",
    "Botswana", "Brazil", "Brunei", "Bulgaria", "Burkina Faso", "Burundi", "Cambodia", "Cameroon",
    "Canada", "Cape Verde", "Central African Republic", "Chad", "Chile", "China",
    "People's Republic of China", "Colombia", "Comoros", "Congo",
    "Democratic Republic of the Congo", "Costa Rica", "Croatia", "Cuba", "Cyprus", "Czech Republic",
    "Czechia", "Denmark", "Djibouti", "Dominica", "Dominican Republic", "East Timor", "Ecuador",
    "Egypt", "El Salvador", "Equatorial Guinea", "Eritrea", "Estonia", "Eswatini", "Ethiopia",
    "Fiji", "Finland", "France", "Gabon", "Gambia", "Germany", "Ghana", "Greece", "Grenada",
    "Guatemala", "Guinea", "Guinea-Bissau", "Guyana", "Haiti", "Honduras", "Hungary", "Iceland",
    "India", "Indonesia", "Iran", "Iraq", "Ireland", "Republic of Ireland", "Israel", "Italy",
    "Ivory Coast", "Jamaica", "Japan", "Jordan", "Kazakhstan", "Kenya", "Kiribati", "Kosovo",
    "Kuwait", "Kyrgyzstan", "Laos", "Latvia", "Lebanon", "Lesotho", "Liberia", "Libya",
    "Liechtenstein", "Lithuania", "Luxembourg", "Madagascar", "Malawi", "Malaysia", "Maldives",
    "Mali", "Malta", "Marshall Islands", "Mauritania", "Mauritius", "Mexico", "Micronesia",
    "Moldova", "Monaco", "Mongolia", "Montenegro", "Morocco", "Mozambique", "Myanmar", "Burma",
    "Namibia", "Nauru", "Nepal", "Netherlands", "New Zealand", "Nicaragua", "Niger", "Nigeria",
    "North Korea", "North Macedonia", "Norway", "Oman", "Pakistan", "Palau", "Palestine", "Panama",
    "Papua New Guinea", "Paraguay", "Peru", "Philippines", "Poland", "Portugal", "Qatar", "Romania",
    "Russia", "Russian Federation", "Rwanda", "Saint Kitts and Nevis", "Saint Lucia",
    "Saint Vincent and the Grenadines", "Samoa", "San Marino", "Sao Tome and Principe",
    "Saudi Arabia", "Senegal", "Serbia", "Seychelles", "Sierra Leone", "Singapore", "Slovakia",
    "Slovenia", "Solomon Islands", "Somalia", "South Africa", "South Korea", "South Sudan", "Spain",
    "Sri Lanka", "Sudan", "Suriname", "Sweden", "Switzerland", "Syria", "Taiwan", "Tajikistan",
    "Tanzania", "Thailand", "Togo", "Tonga", "Trinidad and Tobago", "Tunisia", "Turkey",
    "Turkmenistan", "Tuvalu", "Uganda", "Ukraine", "United Arab Emirates", "United Kingdom", "UK",
    "Great Britain", "Britain", "England", "Scotland", "Wales", "Northern Ireland", "United States",
    "United States of America", "USA", "US", "Uruguay", "Uzbekistan", "Vanuatu", "Vatican City",
    "Venezuela", "Vietnam", "Yemen", "Zambia", "Zimbabwe",
];

/// The kind of place `name` is: "country" for a country's name ("the state of Israel" is one
/// too), else the word the text puts before it as "the K of NAME" ("the city of Dijon":
/// city); `None` when neither says.
pub(crate) fn place_kind(text: &str, name: &str) -> Option<String> {
    if is_country(name) {
        return Some("country".to_owned());
    }
    let n = crate::words::words(name);
    if n.is_empty() {
        return None;
    }
    let t = crate::words::words(text);
    (3..t.len().saturating_sub(n.len() - 1)).find_map(|p| {
        (t[p..p + n.len()] == n[..] && t[p - 1] == "of" && t[p - 3] == "the")
            .then(|| t[p - 2].clone())
    })
}

/// Whether `name` is a country's name ("Mexico", "the Philippines", "U.S.A.").
pub(crate) fn is_country(name: &str) -> bool {
    let name = name.trim();
    let name = ["the ", "The "]
        .iter()
        .find_map(|a| name.strip_prefix(a))
        .unwrap_or(name);
    let key = tessera_storage::name_key(name);
    !key.is_empty()
        && COUNTRIES
            .iter()
            .any(|c| tessera_storage::name_key(c) == key)
}

#[cfg(test)]
mod tests {
    use super::{is_country, place_kind};

    #[test]
    fn countries_by_any_common_spelling() {
        for c in [
            "Mexico",
            "the Philippines",
            "U.S.A.",
            "United States",
            "US",
            "Côte",
        ] {
            assert_eq!(is_country(c), c != "Côte", "{c}");
        }
        for n in [
            "Mexico City",
            "Quezon City",
            "Alcobendas",
            "",
            "the",
            "Texas",
            "Israeli",
        ] {
            assert!(!is_country(n), "{n}");
        }
    }

    #[test]
    fn the_text_or_the_name_says_what_kind_of_place_it_is() {
        let t = "It is in the city of Dijon, in the state of Israel and in the Municipality of \
                 Gettysburg; Bergen is old.";
        assert_eq!(place_kind(t, "Dijon").as_deref(), Some("city"));
        assert_eq!(place_kind(t, "Gettysburg").as_deref(), Some("municipality"));
        assert_eq!(place_kind(t, "Israel").as_deref(), Some("country"));
        assert_eq!(place_kind(t, "Mexico").as_deref(), Some("country"));
        for n in ["Bergen", "", "It", "city of Dijon"] {
            assert_eq!(place_kind(t, n), None, "{n}");
        }
    }
}
