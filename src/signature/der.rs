//! Just enough DER to read what webpki does not hand out: the attributes of
//! a certificate's subject name (for `x509.subject:` identities) and the
//! algorithm of a public key. Every length is checked against the bytes that
//! are left, so a hostile certificate can only make a read fail.

/// DER tags used here.
pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const SET: u8 = 0x31;
pub(crate) const OID: u8 = 0x06;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DerError {
    #[error("truncated DER")]
    Truncated,
    #[error("unsupported DER encoding (high tag number or indefinite length)")]
    Unsupported,
    #[error("expected DER tag {expected:#04x}, found {found:#04x}")]
    UnexpectedTag { expected: u8, found: u8 },
}

/// A cursor over DER-encoded bytes.
pub(crate) struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Der { rest: bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Reads one element: its tag and its contents.
    pub fn read(&mut self) -> Result<(u8, &'a [u8]), DerError> {
        let (&tag, after_tag) = self.rest.split_first().ok_or(DerError::Truncated)?;
        if tag & 0x1f == 0x1f {
            return Err(DerError::Unsupported);
        }
        let (&first, mut after_len) = after_tag.split_first().ok_or(DerError::Truncated)?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            // 0x80 is BER's indefinite length; more than 4 length bytes
            // would describe more than any certificate holds.
            if n == 0 || n > 4 || after_len.len() < n {
                return Err(if n == 0 || n > 4 {
                    DerError::Unsupported
                } else {
                    DerError::Truncated
                });
            }
            let (len_bytes, rest) = after_len.split_at(n);
            after_len = rest;
            len_bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
        };
        if after_len.len() < len {
            return Err(DerError::Truncated);
        }
        let (contents, rest) = after_len.split_at(len);
        self.rest = rest;
        Ok((tag, contents))
    }

    /// Reads one element that must have tag `expected`.
    pub fn expect(&mut self, expected: u8) -> Result<&'a [u8], DerError> {
        let (found, contents) = self.read()?;
        if found != expected {
            return Err(DerError::UnexpectedTag { expected, found });
        }
        Ok(contents)
    }
}

/// The dotted form of an OBJECT IDENTIFIER's contents (`2.5.4.3`).
pub(crate) fn oid_string(contents: &[u8]) -> Result<String, DerError> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for (i, b) in contents.iter().enumerate() {
        if value > (u64::MAX >> 7) {
            return Err(DerError::Unsupported);
        }
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        } else if i + 1 == contents.len() {
            return Err(DerError::Truncated);
        }
    }
    if arcs.is_empty() {
        return Err(DerError::Truncated);
    }
    Ok(arcs
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join("."))
}

/// The short name RFC 4514 (and Notation's trust policies) use for a
/// distinguished-name attribute, or the dotted OID for others.
fn attribute_name(oid: &str) -> String {
    match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.5" => "SERIALNUMBER",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.2.840.113549.1.9.1" => "E",
        other => return other.to_owned(),
    }
    .to_owned()
}

/// The attributes of a Name (`RDNSequence` contents, as webpki's
/// `Cert::subject` returns it) as (short name, value) pairs in order.
/// String values of any DirectoryString kind are read as UTF-8 (BMP and
/// universal strings, which no code-signing CA uses, are refused).
pub(crate) fn name_attributes(rdn_sequence: &[u8]) -> Result<Vec<(String, String)>, DerError> {
    let mut out = Vec::new();
    let mut rdns = Der::new(rdn_sequence);
    while !rdns.is_empty() {
        let mut set = Der::new(rdns.expect(SET)?);
        while !set.is_empty() {
            let mut atv = Der::new(set.expect(SEQUENCE)?);
            let oid = oid_string(atv.expect(OID)?)?;
            let (tag, value) = atv.read()?;
            // UTF8String, PrintableString, IA5String, TeletexString
            if !matches!(tag, 0x0c | 0x13 | 0x16 | 0x14) {
                return Err(DerError::Unsupported);
            }
            let value = String::from_utf8_lossy(value).into_owned();
            out.push((attribute_name(&oid), value));
        }
    }
    Ok(out)
}

/// The first byte of a certificate's keyUsage bits (`digitalSignature` is
/// 0x80), or `None` when the certificate has no keyUsage extension.
pub(crate) fn key_usage(certificate: &[u8]) -> Result<Option<u8>, DerError> {
    let mut cert = Der::new(Der::new(certificate).expect(SEQUENCE)?);
    let mut tbs = Der::new(cert.expect(SEQUENCE)?);
    while !tbs.is_empty() {
        let (tag, contents) = tbs.read()?;
        // [3] EXPLICIT Extensions; everything before it is skipped whole
        if tag != 0xa3 {
            continue;
        }
        let mut extensions = Der::new(Der::new(contents).expect(SEQUENCE)?);
        while !extensions.is_empty() {
            let mut ext = Der::new(extensions.expect(SEQUENCE)?);
            let oid = oid_string(ext.expect(OID)?)?;
            let (mut tag, mut value) = ext.read()?;
            if tag == 0x01 {
                (tag, value) = ext.read()?;
            }
            if oid != "2.5.29.15" || tag != 0x04 {
                continue;
            }
            let bits = Der::new(value).expect(0x03)?;
            return Ok(Some(bits.get(1).copied().unwrap_or(0)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_oids_and_names() {
        // 2.5.4.3
        assert_eq!(oid_string(&[0x55, 0x04, 0x03]).unwrap(), "2.5.4.3");
        // 1.2.840.10045.2.1
        assert_eq!(
            oid_string(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]).unwrap(),
            "1.2.840.10045.2.1"
        );
        // SET { SEQ { OID 2.5.4.3, UTF8String "ab" } }
        let name = [
            0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x02, b'a', b'b',
        ];
        assert_eq!(
            name_attributes(&name).unwrap(),
            vec![("CN".to_owned(), "ab".to_owned())]
        );
    }

    #[test]
    fn hostile_lengths_fail_cleanly() {
        // a length that claims more than is there
        assert_eq!(
            Der::new(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).read(),
            Err(DerError::Truncated)
        );
        // indefinite length, high tag number, too many length bytes
        assert_eq!(
            Der::new(&[0x30, 0x80, 0x00]).read(),
            Err(DerError::Unsupported)
        );
        assert_eq!(
            Der::new(&[0x1f, 0x01, 0x00]).read(),
            Err(DerError::Unsupported)
        );
        assert_eq!(
            Der::new(&[0x30, 0x89, 1, 1, 1, 1, 1, 1, 1, 1, 1]).read(),
            Err(DerError::Unsupported)
        );
        assert!(oid_string(&[0x88]).is_err());
        assert!(oid_string(&[0xff; 20]).is_err());
        assert!(name_attributes(&[0x31, 0x05, 0x30, 0x03, 0x06, 0x01]).is_err());
    }
}
