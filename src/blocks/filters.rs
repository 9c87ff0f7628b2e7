//! Tera filters that email templates need beyond Tera's own: money and grouped numbers.
//!
//! `{{ item.price | money(currency="EUR") }}` → `€1,240.50`; `{{ points | grouped }}` → `1,240`.

use std::collections::HashMap;
use tera::{Result, Tera, Value};

pub(super) fn register(tera: &mut Tera) {
    tera.register_filter("money", money);
    tera.register_filter("grouped", grouped);
}

fn number(value: &Value, filter: &str) -> Result<f64> {
    match value {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| tera::Error::msg(format!("{filter}: number out of range"))),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| tera::Error::msg(format!("{filter}: `{s}` is not a number"))),
        other => Err(tera::Error::msg(format!(
            "{filter}: expected a number, got {other}"
        ))),
    }
}

/// Groups the integer part of a formatted number with commas: "1240.50" → "1,240.50".
fn group_thousands(formatted: &str) -> String {
    let (sign, digits) = formatted
        .strip_prefix('-')
        .map_or(("", formatted), |rest| ("-", rest));
    let (integer, fraction) = digits
        .split_once('.')
        .map_or((digits, None), |(i, f)| (i, Some(f)));
    let mut grouped = String::with_capacity(formatted.len() + integer.len() / 3);
    for (index, ch) in integer.chars().enumerate() {
        if index > 0 && (integer.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    match fraction {
        Some(fraction) => format!("{sign}{grouped}.{fraction}"),
        None => format!("{sign}{grouped}"),
    }
}

fn money(value: &Value, args: &HashMap<String, Value>) -> Result<Value> {
    let amount = number(value, "money")?;
    let currency = args
        .get("currency")
        .and_then(Value::as_str)
        .unwrap_or("EUR");
    let formatted = group_thousands(&format!("{:.2}", amount.abs()));
    let sign = if amount < 0.0 { "-" } else { "" };
    let text = match currency {
        "EUR" => format!("{sign}€{formatted}"),
        "USD" => format!("{sign}${formatted}"),
        "GBP" => format!("{sign}£{formatted}"),
        other => format!("{sign}{other} {formatted}"),
    };
    Ok(Value::String(text))
}

fn grouped(value: &Value, _: &HashMap<String, Value>) -> Result<Value> {
    let amount = number(value, "grouped")?;
    Ok(Value::String(group_thousands(&format!(
        "{}",
        amount.round() as i64
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(currency: &str) -> HashMap<String, Value> {
        HashMap::from([("currency".to_owned(), json!(currency))])
    }

    #[test]
    fn money_formats_common_currencies() {
        assert_eq!(
            money(&json!(1240.5), &args("EUR")).unwrap(),
            json!("€1,240.50")
        );
        assert_eq!(money(&json!(9), &args("USD")).unwrap(), json!("$9.00"));
        assert_eq!(
            money(&json!("-3.456"), &args("GBP")).unwrap(),
            json!("-£3.46")
        );
        assert_eq!(
            money(&json!(1234567), &args("CHF")).unwrap(),
            json!("CHF 1,234,567.00")
        );
        assert!(money(&json!("abc"), &args("EUR")).is_err());
        assert!(money(&json!(null), &args("EUR")).is_err());
    }

    #[test]
    fn grouped_rounds_and_groups() {
        assert_eq!(
            grouped(&json!(1240), &HashMap::new()).unwrap(),
            json!("1,240")
        );
        assert_eq!(
            grouped(&json!(999.6), &HashMap::new()).unwrap(),
            json!("1,000")
        );
        assert_eq!(
            grouped(&json!(-1234567), &HashMap::new()).unwrap(),
            json!("-1,234,567")
        );
    }
}
