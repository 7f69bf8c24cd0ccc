//! Parameter serialization as OpenAPI defines it (`style` and `explode`, OpenAPI 3.1
//! §4.8.12.4, the RFC 6570 expansions): path `simple`/`label`/`matrix`, query
//! `form`/`spaceDelimited`/`pipeDelimited`/`deepObject`, header `simple`, cookie `form`.
//!
//! Values are percent-encoded here, with everything outside RFC 3986's unreserved set
//! (`A-Z a-z 0-9 - . _ ~`) encoded, so a `/` in a path parameter can never become a path
//! separator and a `&` in a query value never a new parameter. The delimiters a style adds
//! (`,` `.` `;` `=` `|` `[` `]`, and `%20` for `spaceDelimited`) are literal. Header values
//! are not encoded (they are not URLs); cookie values only where RFC 6265 requires.
//!
//! Scalars: strings as they are, numbers and booleans as JSON writes them; a nested array
//! or object inside an array or object (which no style defines) as its JSON text.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value};

/// Everything but RFC 3986 unreserved characters.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// `allowReserved` query values: reserved characters stay, except those that would end the
/// value or the query (`&`, `=`, `#`).
const RESERVED_ALLOWED: &AsciiSet = &COMPONENT
    .remove(b':')
    .remove(b'/')
    .remove(b'?')
    .remove(b'[')
    .remove(b']')
    .remove(b'@')
    .remove(b'!')
    .remove(b'$')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';');

/// Characters RFC 6265 does not allow in a cookie value (`cookie-octet`), and `%` itself.
/// (`=` is allowed.)
const COOKIE_VALUE: &AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b',')
    .add(b';')
    .add(b'\\')
    .add(b'%');

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    Path,
    Query,
    Header,
    Cookie,
}

impl Location {
    pub fn parse(s: &str) -> Option<Location> {
        Some(match s {
            "path" => Location::Path,
            "query" => Location::Query,
            "header" => Location::Header,
            "cookie" => Location::Cookie,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Location::Path => "path",
            Location::Query => "query",
            Location::Header => "header",
            Location::Cookie => "cookie",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Simple,
    Label,
    Matrix,
    Form,
    SpaceDelimited,
    PipeDelimited,
    DeepObject,
}

impl Style {
    /// The style a parameter in `location` has when it names none.
    pub fn default_for(location: Location) -> Style {
        match location {
            Location::Path | Location::Header => Style::Simple,
            Location::Query | Location::Cookie => Style::Form,
        }
    }

    /// The style named `name`, if `location` allows it.
    pub fn parse(name: &str, location: Location) -> Result<Style, String> {
        let style = match name {
            "simple" => Style::Simple,
            "label" => Style::Label,
            "matrix" => Style::Matrix,
            "form" => Style::Form,
            "spaceDelimited" => Style::SpaceDelimited,
            "pipeDelimited" => Style::PipeDelimited,
            "deepObject" => Style::DeepObject,
            other => return Err(format!("unknown style `{other}`")),
        };
        let allowed = match location {
            Location::Path => matches!(style, Style::Simple | Style::Label | Style::Matrix),
            Location::Query => matches!(
                style,
                Style::Form | Style::SpaceDelimited | Style::PipeDelimited | Style::DeepObject
            ),
            Location::Header => style == Style::Simple,
            Location::Cookie => style == Style::Form,
        };
        if !allowed {
            return Err(format!(
                "style `{name}` is not defined for {} parameters",
                location.as_str()
            ));
        }
        Ok(style)
    }
}

/// A scalar as text.
pub fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn enc(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// Pairs of an object, as (key, scalar text).
fn pairs(object: &Map<String, Value>) -> impl Iterator<Item = (&String, String)> {
    object.iter().map(|(k, v)| (k, scalar(v)))
}

/// A path parameter's replacement for `{name}`.
pub fn path(name: &str, value: &Value, style: Style, explode: bool) -> String {
    let items = |sep: &str| match value {
        Value::Array(items) => items
            .iter()
            .map(|v| enc(&scalar(v)))
            .collect::<Vec<_>>()
            .join(sep),
        _ => enc(&scalar(value)),
    };
    let object = |pair_sep: &str, sep: &str| match value {
        Value::Object(o) => Some(
            pairs(o)
                .map(|(k, v)| format!("{}{pair_sep}{}", enc(k), enc(&v)))
                .collect::<Vec<_>>()
                .join(sep),
        ),
        _ => None,
    };
    match style {
        Style::Label => {
            let sep = if explode { "." } else { "," };
            let body = object(if explode { "=" } else { "," }, sep).unwrap_or_else(|| items(sep));
            format!(".{body}")
        }
        Style::Matrix => match value {
            Value::Object(_) if explode => format!(";{}", object("=", ";").unwrap_or_default()),
            Value::Object(_) => format!(";{}={}", enc(name), object(",", ",").unwrap_or_default()),
            Value::Array(list) if explode => list
                .iter()
                .map(|v| format!(";{}={}", enc(name), enc(&scalar(v))))
                .collect(),
            _ => format!(";{}={}", enc(name), items(",")),
        },
        // simple (and anything a validated spec cannot name here)
        _ => object(if explode { "=" } else { "," }, ",").unwrap_or_else(|| items(",")),
    }
}

/// A query parameter as `key=value` items (already encoded), to be joined with `&`.
pub fn query(
    name: &str,
    value: &Value,
    style: Style,
    explode: bool,
    allow_reserved: bool,
) -> Vec<String> {
    let set = if allow_reserved {
        RESERVED_ALLOWED
    } else {
        COMPONENT
    };
    let e = |t: &str| utf8_percent_encode(t, set).to_string();
    let key = enc(name);
    match (value, style) {
        (Value::Object(o), Style::DeepObject) => deep_object(&key, o),
        (Value::Object(o), _) if explode => pairs(o)
            .map(|(k, v)| format!("{}={}", enc(k), e(&v)))
            .collect(),
        (Value::Object(o), _) => {
            let flat: Vec<String> = pairs(o).flat_map(|(k, v)| [e(k), e(&v)]).collect();
            vec![format!("{key}={}", flat.join(","))]
        }
        (Value::Array(items), _) if explode => items
            .iter()
            .map(|v| format!("{key}={}", e(&scalar(v))))
            .collect(),
        (Value::Array(items), _) => {
            let sep = match style {
                Style::SpaceDelimited => "%20",
                Style::PipeDelimited => "|",
                _ => ",",
            };
            let joined: Vec<String> = items.iter().map(|v| e(&scalar(v))).collect();
            vec![format!("{key}={}", joined.join(sep))]
        }
        (scalar_value, _) => vec![format!("{key}={}", e(&scalar(scalar_value)))],
    }
}

/// `name[key]=value`, nesting for nested objects (`name[a][b]=v`), arrays repeated.
fn deep_object(prefix: &str, object: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in object {
        let key = format!("{prefix}[{}]", enc(k));
        match v {
            Value::Object(inner) => out.extend(deep_object(&key, inner)),
            Value::Array(items) => out.extend(
                items
                    .iter()
                    .map(|item| format!("{key}={}", enc(&scalar(item)))),
            ),
            _ => out.push(format!("{key}={}", enc(&scalar(v)))),
        }
    }
    out
}

/// A header parameter's value (`simple` style, not percent-encoded).
pub fn header(value: &Value, explode: bool) -> String {
    match value {
        Value::Array(items) => items.iter().map(scalar).collect::<Vec<_>>().join(","),
        Value::Object(o) => pairs(o)
            .map(|(k, v)| {
                if explode {
                    format!("{k}={v}")
                } else {
                    format!("{k},{v}")
                }
            })
            .collect::<Vec<_>>()
            .join(","),
        _ => scalar(value),
    }
}

/// A cookie parameter as `name=value` (`form` style; arrays and objects comma-joined).
/// Only what RFC 6265 forbids in a cookie value (controls, space, `"`, `,`, `;`, `\`,
/// non-ASCII) is percent-encoded: servers hand cookie values over undecoded, so encoding
/// more would change the value they see.
pub fn cookie(name: &str, value: &Value) -> String {
    let c = |t: &str| utf8_percent_encode(t, COOKIE_VALUE).to_string();
    let text = match value {
        Value::Array(items) => items
            .iter()
            .map(|v| c(&scalar(v)))
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(o) => pairs(o)
            .flat_map(|(k, v)| [c(k), c(&v)])
            .collect::<Vec<_>>()
            .join(","),
        _ => c(&scalar(value)),
    };
    format!("{}={text}", c(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // The examples of the OpenAPI specification's style table (§4.8.12.4):
    // string "blue", array ["blue","black","brown"], object {"R":100,"G":200,"B":150}.
    fn values() -> (Value, Value, Value) {
        (
            json!("blue"),
            json!(["blue", "black", "brown"]),
            // serde_json keeps object keys sorted: B, G, R.
            json!({"B": 150, "G": 200, "R": 100}),
        )
    }

    #[test]
    fn path_styles_follow_the_specification_table() {
        let (s, a, o) = values();
        for (style, explode, expect) in [
            (
                Style::Simple,
                false,
                ["blue", "blue,black,brown", "B,150,G,200,R,100"],
            ),
            (
                Style::Simple,
                true,
                ["blue", "blue,black,brown", "B=150,G=200,R=100"],
            ),
            (
                Style::Label,
                false,
                [".blue", ".blue,black,brown", ".B,150,G,200,R,100"],
            ),
            (
                Style::Label,
                true,
                [".blue", ".blue.black.brown", ".B=150.G=200.R=100"],
            ),
            (
                Style::Matrix,
                false,
                [
                    ";color=blue",
                    ";color=blue,black,brown",
                    ";color=B,150,G,200,R,100",
                ],
            ),
            (
                Style::Matrix,
                true,
                [
                    ";color=blue",
                    ";color=blue;color=black;color=brown",
                    ";B=150;G=200;R=100",
                ],
            ),
        ] {
            let got = [&s, &a, &o].map(|v| path("color", v, style, explode));
            assert_eq!(got, expect.map(String::from), "{style:?} explode={explode}");
        }
    }

    #[test]
    fn query_styles_follow_the_specification_table() {
        let (s, a, o) = values();
        let q = |v: &Value, style, explode| query("color", v, style, explode, false).join("&");
        assert_eq!(q(&s, Style::Form, true), "color=blue");
        assert_eq!(q(&a, Style::Form, false), "color=blue,black,brown");
        assert_eq!(
            q(&a, Style::Form, true),
            "color=blue&color=black&color=brown"
        );
        assert_eq!(q(&o, Style::Form, false), "color=B,150,G,200,R,100");
        assert_eq!(q(&o, Style::Form, true), "B=150&G=200&R=100");
        assert_eq!(
            q(&a, Style::SpaceDelimited, false),
            "color=blue%20black%20brown"
        );
        assert_eq!(q(&a, Style::PipeDelimited, false), "color=blue|black|brown");
        assert_eq!(
            q(&o, Style::DeepObject, true),
            "color[B]=150&color[G]=200&color[R]=100"
        );
    }

    #[test]
    fn values_are_encoded_and_delimiters_are_not() {
        assert_eq!(
            path("id", &json!("a/b c?"), Style::Simple, false),
            "a%2Fb%20c%3F"
        );
        assert_eq!(
            path("id", &json!(["x,y", "z"]), Style::Simple, false),
            "x%2Cy,z"
        );
        assert_eq!(
            query("q", &json!("a&b=c#d é"), Style::Form, true, false),
            vec!["q=a%26b%3Dc%23d%20%C3%A9"]
        );
        assert_eq!(
            query("path", &json!("/a/b?c&d"), Style::Form, true, true),
            vec!["path=/a/b?c%26d"]
        );
        assert_eq!(query("n", &json!(3), Style::Form, true, false), vec!["n=3"]);
        assert_eq!(
            query("b", &json!(true), Style::Form, true, false),
            vec!["b=true"]
        );
        assert_eq!(header(&json!(["a", 1]), false), "a,1");
        assert_eq!(
            cookie("session id", &json!("x;y:z")),
            "session%20id=x%3By:z"
        );
    }

    #[test]
    fn styles_are_checked_per_location() {
        assert!(Style::parse("deepObject", Location::Path).is_err());
        assert!(Style::parse("matrix", Location::Query).is_err());
        assert!(Style::parse("form", Location::Cookie).is_ok());
        assert!(
            Style::parse("tabDelimited", Location::Query)
                .unwrap_err()
                .contains("unknown")
        );
    }
}
