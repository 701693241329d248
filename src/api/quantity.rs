//! Kubernetes resource quantities: `100m`, `0.5`, `128Mi`, `1G`, `1e3`.

/// A quantity in thousandths of its unit (millicores for CPU, millibytes for memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity {
    milli: i128,
}

/// Why a quantity string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid quantity {input:?}: {reason}")]
pub struct QuantityError {
    /// The text as written.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Quantity {
    /// Parses a quantity as Kubernetes does (binary, decimal and exponent suffixes).
    pub fn parse(input: &str) -> Result<Quantity, QuantityError> {
        let err = |reason| QuantityError {
            input: input.to_string(),
            reason,
        };
        let s = input.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
            .unwrap_or(s.len());
        let (number, suffix) = s.split_at(split);
        if number.is_empty() || number == "." {
            return Err(err("no number"));
        }
        let (negative, number) = match number.as_bytes()[0] {
            b'-' => (true, &number[1..]),
            b'+' => (false, &number[1..]),
            _ => (false, number),
        };
        if negative {
            return Err(err("must not be negative"));
        }
        let (int, frac) = number.split_once('.').unwrap_or((number, ""));
        if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) || (int.is_empty() && frac.is_empty()) {
            return Err(err("not a number"));
        }
        if int.len() + frac.len() > 30 {
            return Err(err("too many digits"));
        }
        // value = digits / 10^frac.len(), in thousandths: scale to 10^-(frac.len()) then to milli.
        let digits: i128 = format!("{int}{frac}").parse().map_err(|_| err("not a number"))?;
        let (mul_num, mul_exp10): (i128, i32) = match suffix {
            "" => (1, 0),
            "m" => (1, -3),
            "k" => (1, 3),
            "M" => (1, 6),
            "G" => (1, 9),
            "T" => (1, 12),
            "P" => (1, 15),
            "E" => (1, 18),
            "Ki" => (1 << 10, 0),
            "Mi" => (1 << 20, 0),
            "Gi" => (1 << 30, 0),
            "Ti" => (1 << 40, 0),
            "Pi" => (1 << 50, 0),
            "Ei" => (1 << 60, 0),
            s if s.starts_with(['e', 'E']) => {
                let exp: i32 = s[1..].parse().map_err(|_| err("bad exponent"))?;
                if !(-18..=18).contains(&exp) {
                    return Err(err("exponent out of range"));
                }
                (1, exp)
            }
            _ => return Err(err("unknown suffix (use m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei)")),
        };
        let exp = mul_exp10 + 3 - frac.len() as i32;
        let value = digits.checked_mul(mul_num).ok_or_else(|| err("too large"))?;
        let milli = if exp >= 0 {
            10i128
                .checked_pow(exp as u32)
                .and_then(|p| value.checked_mul(p))
                .ok_or_else(|| err("too large"))?
        } else {
            // Kubernetes rounds up fractions of the smallest unit.
            let p = 10i128.pow((-exp) as u32);
            (value + p - 1) / p
        };
        if milli > i64::MAX as i128 * 1000 {
            return Err(err("too large"));
        }
        Ok(Quantity { milli })
    }

    /// Thousandths of the unit: millicores for a CPU quantity.
    pub fn milli(self) -> i64 {
        self.milli as i64
    }

    /// Whole units, rounded up: bytes for a memory quantity.
    pub fn whole_ceil(self) -> i64 {
        ((self.milli + 999) / 1000) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cpu_and_memory_forms_match_kubernetes() {
        assert_eq!(Quantity::parse("100m").unwrap().milli(), 100);
        assert_eq!(Quantity::parse("0.5").unwrap().milli(), 500);
        assert_eq!(Quantity::parse("2").unwrap().milli(), 2000);
        assert_eq!(Quantity::parse("128Mi").unwrap().whole_ceil(), 128 << 20);
        assert_eq!(Quantity::parse("1G").unwrap().whole_ceil(), 1_000_000_000);
        assert_eq!(Quantity::parse("1e3").unwrap().whole_ceil(), 1000);
        assert_eq!(Quantity::parse("1.5Gi").unwrap().whole_ceil(), 3 << 29);
        assert_eq!(Quantity::parse("0.1m").unwrap().milli(), 1);
    }

    #[test]
    fn garbage_is_refused_with_the_reason() {
        for bad in ["", "abc", "10Qi", "-1", "1.2.3", "1e99", "."] {
            assert!(Quantity::parse(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(Quantity::parse("5x").unwrap_err().input, "5x");
    }

    proptest! {
        #[test]
        fn integers_with_binary_suffix_scale_exactly(n in 0i64..1_000_000, s in 0usize..4) {
            let (suffix, shift) = [("", 0), ("Ki", 10), ("Mi", 20), ("Gi", 30)][s];
            let q = Quantity::parse(&format!("{n}{suffix}")).unwrap();
            prop_assert_eq!(q.whole_ceil(), n << shift);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,12}") {
            let _ = Quantity::parse(&s);
        }
    }
}
