//! The 16 DTMF keys (ITU-T Q.23) and their frequency pairs.
//!
//! Owns the keypad layout only: a key is a (row, column) pair of indices
//! into [`ROW_HZ`] (low group) and [`COLUMN_HZ`] (high group). It does not
//! own detection or synthesis.
//!
//! ```text
//!            1209  1336  1477  1633 Hz
//!   697 Hz    1     2     3     A
//!   770 Hz    4     5     6     B
//!   852 Hz    7     8     9     C
//!   941 Hz    *     0     #     D
//! ```

use std::fmt;

/// Low-group (row) frequencies in Hz.
pub const ROW_HZ: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
/// High-group (column) frequencies in Hz.
pub const COLUMN_HZ: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];

const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// One DTMF key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digit {
    row: u8,
    column: u8,
}

impl Digit {
    /// All 16 keys, in the order `1 2 3 A 4 5 6 B 7 8 9 C * 0 # D`.
    pub const ALL: [Digit; 16] = {
        let mut all = [Digit { row: 0, column: 0 }; 16];
        let mut i = 0;
        while i < 16 {
            all[i] = Digit {
                row: (i / 4) as u8,
                column: (i % 4) as u8,
            };
            i += 1;
        }
        all
    };

    /// The key at `row` (0..4, low group) and `column` (0..4, high group).
    pub fn from_indices(row: usize, column: usize) -> Option<Digit> {
        (row < 4 && column < 4).then_some(Digit {
            row: row as u8,
            column: column as u8,
        })
    }

    /// The key for a character: `0`-`9`, `*`, `#`, `A`-`D` (either case).
    pub fn from_char(c: char) -> Option<Digit> {
        let c = c.to_ascii_uppercase();
        KEYS.iter().enumerate().find_map(|(row, keys)| {
            keys.iter()
                .position(|&k| k == c)
                .and_then(|column| Digit::from_indices(row, column))
        })
    }

    /// The key's character.
    pub fn as_char(self) -> char {
        KEYS[self.row as usize][self.column as usize]
    }

    /// Row index (low group), 0..4.
    pub fn row(self) -> usize {
        self.row as usize
    }

    /// Column index (high group), 0..4.
    pub fn column(self) -> usize {
        self.column as usize
    }

    /// `(low, high)` frequencies in Hz.
    pub fn frequencies(self) -> (f64, f64) {
        (ROW_HZ[self.row()], COLUMN_HZ[self.column()])
    }
}

impl fmt::Display for Digit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_char())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_round_trips_through_its_character() {
        for d in Digit::ALL {
            assert_eq!(Digit::from_char(d.as_char()), Some(d));
        }
        assert_eq!(Digit::from_char('b'), Digit::from_char('B'));
        assert_eq!(Digit::from_char('x'), None);
        assert_eq!(
            Digit::from_char('5').map(Digit::frequencies),
            Some((770.0, 1336.0))
        );
    }
}
