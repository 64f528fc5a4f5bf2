//! Just enough of the BPF Type Format to find where a kernel struct keeps a field.
//!
//! The `skb:kfree_skb` program follows pointers (skb -> dev -> net) whose layouts change
//! between kernels. C programs get that from CO-RE relocations; aya's Rust programs do not, so
//! the loader looks the offsets up in /sys/kernel/btf/vmlinux and hands them to the program.
//! Format: <https://docs.kernel.org/bpf/btf.html>.

use std::collections::HashMap;

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BtfError {
    #[error("not BTF (bad magic or header)")]
    Header,
    #[error("BTF type {0} runs past the type section")]
    Truncated(u32),
    #[error("BTF kind {kind} of type {id} is unknown")]
    UnknownKind { id: u32, kind: u32 },
    #[error("the kernel's BTF has no struct {0}")]
    NoStruct(String),
    #[error("struct {ty} has no field {field}")]
    NoField { ty: String, field: String },
    #[error("{ty}.{field} is not a struct or union, cannot look inside it")]
    NotAggregate { ty: String, field: String },
}

const MAGIC: u16 = 0xeb9f;
const KIND_PTR: u32 = 2;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_TYPE_TAG: u32 = 18;

#[derive(Clone, Debug)]
struct Member {
    name: u32,
    ty: u32,
    bit_offset: u32,
}

#[derive(Clone, Debug)]
struct Type {
    name: u32,
    kind: u32,
    /// For modifiers, typedefs and pointers: the type referred to.
    ty: u32,
    members: Vec<Member>,
}

/// The types and strings of one BTF blob (little or big endian, as the host).
pub struct Btf {
    strings: Vec<u8>,
    /// Index = type id; id 0 is `void`.
    types: Vec<Type>,
    structs: HashMap<String, u32>,
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    data.get(at..at + 4)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

impl Btf {
    pub fn from_sys_fs() -> Result<Self, std::io::Error> {
        let data = std::fs::read("/sys/kernel/btf/vmlinux")?;
        Self::parse(&data).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    pub fn parse(data: &[u8]) -> Result<Self, BtfError> {
        let magic = data
            .get(0..2)
            .map(|b| u16::from_ne_bytes([b[0], b[1]]))
            .ok_or(BtfError::Header)?;
        if magic != MAGIC {
            return Err(BtfError::Header);
        }
        let field = |i: usize| u32_at(data, 4 + 4 * i).ok_or(BtfError::Header);
        let hdr_len = field(0)? as usize;
        let (type_off, type_len) = (field(1)? as usize, field(2)? as usize);
        let (str_off, str_len) = (field(3)? as usize, field(4)? as usize);
        let section = |off: usize, len: usize| {
            let start = hdr_len.checked_add(off).ok_or(BtfError::Header)?;
            data.get(start..start.checked_add(len).ok_or(BtfError::Header)?)
                .ok_or(BtfError::Header)
        };
        let tsec = section(type_off, type_len)?;
        let strings = section(str_off, str_len)?.to_vec();

        let mut types = vec![Type {
            name: 0,
            kind: 0,
            ty: 0,
            members: Vec::new(),
        }];
        let mut at = 0usize;
        while at < tsec.len() {
            let id = u32::try_from(types.len()).unwrap_or(u32::MAX);
            let word = |i: usize| u32_at(tsec, at + 4 * i).ok_or(BtfError::Truncated(id));
            let (name, info, size_or_type) = (word(0)?, word(1)?, word(2)?);
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let kind_flag = info >> 31 == 1;
            at += 12;
            let mut members = Vec::new();
            let extra = match kind {
                0 | KIND_PTR | 7 | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
                | 12 | 16 | KIND_TYPE_TAG => 0,
                1 | 14 | 17 => 4,
                3 => 12,
                6 | 13 => 8 * vlen,
                15 | 19 => 12 * vlen,
                KIND_STRUCT | KIND_UNION => {
                    for m in 0..vlen {
                        let w = |i: usize| {
                            u32_at(tsec, at + 12 * m + 4 * i).ok_or(BtfError::Truncated(id))
                        };
                        let offset = w(2)?;
                        members.push(Member {
                            name: w(0)?,
                            ty: w(1)?,
                            // With kind_flag, the top 8 bits are a bitfield's size.
                            bit_offset: if kind_flag {
                                offset & 0x00ff_ffff
                            } else {
                                offset
                            },
                        });
                    }
                    12 * vlen
                }
                other => return Err(BtfError::UnknownKind { id, kind: other }),
            };
            at += extra;
            if at > tsec.len() {
                return Err(BtfError::Truncated(id));
            }
            types.push(Type {
                name,
                kind,
                ty: size_or_type,
                members,
            });
        }
        let mut btf = Self {
            strings,
            types,
            structs: HashMap::new(),
        };
        for (id, t) in btf.types.iter().enumerate() {
            // A forward declaration or an empty duplicate must not shadow the real struct.
            if t.kind == KIND_STRUCT && !t.members.is_empty() {
                let name = btf.name(t.name).to_owned();
                btf.structs
                    .entry(name)
                    .or_insert(u32::try_from(id).unwrap_or(0));
            }
        }
        Ok(btf)
    }

    fn name(&self, off: u32) -> &str {
        let rest = self.strings.get(off as usize..).unwrap_or_default();
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or("")
    }

    /// Follows typedefs and qualifiers (not pointers) to the type they name.
    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.types.get(id as usize) {
                Some(t)
                    if matches!(
                        t.kind,
                        KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG
                    ) =>
                {
                    id = t.ty;
                }
                _ => break,
            }
        }
        id
    }

    /// A named member of the struct/union `id`, looking inside anonymous members (the kernel
    /// wraps many fields in anonymous unions): its type and bit offset from the start of `id`.
    fn member(&self, id: u32, field: &str, depth: u32) -> Option<(u32, u32)> {
        let t = self.types.get(id as usize)?;
        for m in &t.members {
            if self.name(m.name) == field {
                return Some((m.ty, m.bit_offset));
            }
        }
        if depth > 8 {
            return None;
        }
        for m in t.members.iter().filter(|m| m.name == 0) {
            let inner = self.resolve(m.ty);
            if let Some((ty, off)) = self.member(inner, field, depth + 1) {
                return Some((ty, m.bit_offset + off));
            }
        }
        None
    }

    /// Byte offset of `path` (fields separated by dots, each inside the previous one's struct,
    /// no pointers followed) from the start of `struct name`.
    pub fn offset_of(&self, name: &str, path: &str) -> Result<u32, BtfError> {
        let mut id = *self
            .structs
            .get(name)
            .ok_or_else(|| BtfError::NoStruct(name.to_owned()))?;
        let mut bits = 0u32;
        let mut ty_name = name.to_owned();
        for (i, field) in path.split('.').enumerate() {
            if i > 0 {
                let kind = self.types.get(id as usize).map_or(0, |t| t.kind);
                if kind != KIND_STRUCT && kind != KIND_UNION {
                    return Err(BtfError::NotAggregate {
                        ty: ty_name,
                        field: field.to_owned(),
                    });
                }
            }
            let (ty, off) = self.member(id, field, 0).ok_or_else(|| BtfError::NoField {
                ty: ty_name.clone(),
                field: field.to_owned(),
            })?;
            bits += off;
            id = self.resolve(ty);
            ty_name = format!("{ty_name}.{field}");
        }
        Ok(bits / 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a BTF blob: `struct inner { int a; int b; }` and
    /// `struct outer { long x; union { int y; struct inner in; }; }` via a typedef.
    fn blob() -> Vec<u8> {
        let mut strings = b"\0int\0a\0b\0inner\0outer\0x\0y\0in\0inner_t\0".to_vec();
        strings.push(0);
        let s = |name: &str| {
            let pat = format!("\0{name}\0");
            u32::try_from(
                strings
                    .windows(pat.len())
                    .position(|w| w == pat.as_bytes())
                    .unwrap_or(0)
                    + 1,
            )
            .unwrap_or(0)
        };
        let info = |kind: u32, vlen: u32| (kind << 24) | vlen;
        let mut t: Vec<u32> = Vec::new();
        // 1: int (4 bytes)
        t.extend([s("int"), info(1, 0), 4, 32]);
        // 2: struct inner { a @0, b @32 bits }
        t.extend([s("inner"), info(4, 2), 8]);
        t.extend([s("a"), 1, 0, s("b"), 1, 32]);
        // 3: typedef inner_t = 2
        t.extend([s("inner_t"), info(8, 0), 2]);
        // 4: anonymous union { y: int, in: inner_t }
        t.extend([0, info(5, 2), 8]);
        t.extend([s("y"), 1, 0, s("in"), 3, 0]);
        // 5: struct outer { x @0, <anon> @64 }
        t.extend([s("outer"), info(4, 2), 16]);
        t.extend([s("x"), 1, 0, 0, 4, 64]);
        let types: Vec<u8> = t.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let mut out = Vec::new();
        out.extend(MAGIC.to_ne_bytes());
        out.extend([1u8, 0]);
        for w in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            out.extend(w.to_ne_bytes());
        }
        out.extend(types);
        out.extend(strings);
        out
    }

    #[test]
    fn finds_fields_through_anonymous_unions_and_typedefs() {
        let btf = Btf::parse(&blob()).expect("parses");
        assert_eq!(btf.offset_of("outer", "x"), Ok(0));
        assert_eq!(btf.offset_of("outer", "y"), Ok(8));
        assert_eq!(btf.offset_of("outer", "in.b"), Ok(12));
        assert_eq!(btf.offset_of("inner", "b"), Ok(4));
    }

    #[test]
    fn missing_names_are_errors_not_panics() {
        let btf = Btf::parse(&blob()).expect("parses");
        assert!(matches!(
            btf.offset_of("nope", "x"),
            Err(BtfError::NoStruct(_))
        ));
        assert!(matches!(
            btf.offset_of("outer", "zz"),
            Err(BtfError::NoField { .. })
        ));
        assert!(matches!(
            btf.offset_of("outer", "x.y"),
            Err(BtfError::NotAggregate { .. })
        ));
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(Btf::parse(b"").err(), Some(BtfError::Header));
        assert_eq!(Btf::parse(&[0u8; 64]).err(), Some(BtfError::Header));
        let mut cut = blob();
        cut.truncate(40);
        assert!(Btf::parse(&cut).is_err());
    }

    #[test]
    fn this_kernel_has_the_fields_the_drop_probe_reads() {
        let Ok(btf) = Btf::from_sys_fs() else {
            eprintln!("SKIP: no /sys/kernel/btf/vmlinux on this machine");
            return;
        };
        for (s, f) in [
            ("sk_buff", "dev"),
            ("sk_buff", "sk"),
            ("sk_buff", "head"),
            ("sk_buff", "network_header"),
            ("net_device", "nd_net.net"),
            ("net_device", "ifindex"),
            ("sock", "__sk_common.skc_net.net"),
            ("net", "ns.inum"),
        ] {
            assert!(btf.offset_of(s, f).is_ok(), "{s}.{f}");
        }
        // sk_buff starts with next/prev (or an rb_node) in every kernel since 2.6.
        assert_eq!(btf.offset_of("sk_buff", "next"), Ok(0));
    }
}
