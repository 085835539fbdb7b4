//! A strict GGUF reader for untrusted files: [`GgufFile::open`] is the entry point.
//!
//! Model files come from the network and from users' disks, so every count, length, dimension
//! and offset read from the header is checked against a hard cap and against the file size
//! before anything is allocated. The result is candle's [`gguf_file::Content`], so tensors load
//! through candle's quantized types, after [`GgufFile::tensor`] has checked their byte range.

use candle_core::quantized::gguf_file::{self, TensorInfo, Value, VersionedMagic};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Shape};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Most tensors a model file may declare.
pub const MAX_TENSORS: u64 = 1 << 16;
/// Most metadata entries a model file may declare.
pub const MAX_METADATA_ENTRIES: u64 = 1 << 16;
/// Longest string (metadata key, value or tensor name), in bytes.
pub const MAX_STRING_BYTES: u64 = 1 << 24;
/// Most elements in one metadata array (vocabularies are ~10^5).
pub const MAX_ARRAY_ELEMENTS: u64 = 1 << 24;
/// Most bytes of metadata in total, once decoded.
pub const MAX_METADATA_BYTES: u64 = 1 << 28;
/// Most dimensions of a tensor.
pub const MAX_DIMS: u32 = 4;
/// Largest single dimension.
pub const MAX_DIM: u64 = 1 << 32;
/// Most elements in one tensor.
pub const MAX_TENSOR_ELEMENTS: u64 = 1 << 34;

/// What can go wrong reading a GGUF file. Each error names the file.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The model file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a valid GGUF file or breaks a cap.
    #[error("{path}: not a valid GGUF file: {reason}")]
    Invalid {
        /// The model file.
        path: PathBuf,
        /// What is wrong, with the offending value.
        reason: String,
    },
    /// A tensor could not be decoded.
    #[error("{path}: tensor {name}: {reason}")]
    Tensor {
        /// The model file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// An opened, validated GGUF file.
#[derive(Debug)]
pub struct GgufFile {
    path: PathBuf,
    file_len: u64,
    content: gguf_file::Content,
}

struct Reader<R> {
    inner: R,
    pos: u64,
    len: u64,
    metadata_bytes: u64,
}

type R<T> = Result<T, String>;

impl<Rd: Read> Reader<Rd> {
    fn bytes(&mut self, n: u64) -> R<Vec<u8>> {
        if n > self.len.saturating_sub(self.pos) {
            return Err(format!(
                "needs {n} bytes at offset {}, the file ends at {}",
                self.pos, self.len
            ));
        }
        let mut buf = vec![0u8; n as usize];
        self.inner
            .read_exact(&mut buf)
            .map_err(|e| format!("read at offset {}: {e}", self.pos))?;
        self.pos += n;
        Ok(buf)
    }
    fn array<const N: usize>(&mut self) -> R<[u8; N]> {
        let v = self.bytes(N as u64)?;
        let mut a = [0u8; N];
        a.copy_from_slice(&v);
        Ok(a)
    }
    fn u8(&mut self) -> R<u8> {
        Ok(self.array::<1>()?[0])
    }
    fn u32(&mut self) -> R<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> R<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn string(&mut self, what: &str) -> R<String> {
        let n = self.u64()?;
        if n > MAX_STRING_BYTES {
            return Err(format!(
                "{what}: string of {n} bytes (cap {MAX_STRING_BYTES})"
            ));
        }
        self.charge(n)?;
        let mut v = self.bytes(n)?;
        // Some writers add a trailing NUL although GGUF strings are not terminated.
        while v.last() == Some(&0) {
            v.pop();
        }
        String::from_utf8(v).map_err(|_| format!("{what}: string is not UTF-8"))
    }
    fn charge(&mut self, n: u64) -> R<()> {
        self.metadata_bytes = self.metadata_bytes.saturating_add(n);
        if self.metadata_bytes > MAX_METADATA_BYTES {
            return Err(format!("metadata exceeds {MAX_METADATA_BYTES} bytes"));
        }
        Ok(())
    }
    fn value(&mut self, ty: u32, key: &str, depth: u32) -> R<Value> {
        // Decoded values are larger than their encoding; charge the decoded size.
        self.charge(std::mem::size_of::<Value>() as u64)?;
        Ok(match ty {
            0 => Value::U8(self.u8()?),
            1 => Value::I8(self.u8()? as i8),
            2 => Value::U16(u16::from_le_bytes(self.array()?)),
            3 => Value::I16(i16::from_le_bytes(self.array()?)),
            4 => Value::U32(self.u32()?),
            5 => Value::I32(self.u32()? as i32),
            6 => Value::F32(f32::from_le_bytes(self.array()?)),
            7 => match self.u8()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(format!("{key}: bool value {b}")),
            },
            8 => Value::String(self.string(key)?),
            9 => {
                if depth >= 2 {
                    return Err(format!("{key}: arrays nested deeper than 2"));
                }
                let elem_ty = self.u32()?;
                let n = self.u64()?;
                if n > MAX_ARRAY_ELEMENTS {
                    return Err(format!(
                        "{key}: array of {n} elements (cap {MAX_ARRAY_ELEMENTS})"
                    ));
                }
                if n > self.len.saturating_sub(self.pos) {
                    return Err(format!("{key}: array of {n} elements overruns the file"));
                }
                let mut out = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    out.push(self.value(elem_ty, key, depth + 1)?);
                }
                Value::Array(out)
            }
            10 => Value::U64(self.u64()?),
            11 => Value::I64(self.u64()? as i64),
            12 => Value::F64(f64::from_le_bytes(self.array()?)),
            t => return Err(format!("{key}: unknown value type {t}")),
        })
    }
}

fn dtype_from_u32(t: u32) -> R<GgmlDType> {
    Ok(match t {
        0 => GgmlDType::F32,
        1 => GgmlDType::F16,
        2 => GgmlDType::Q4_0,
        3 => GgmlDType::Q4_1,
        6 => GgmlDType::Q5_0,
        7 => GgmlDType::Q5_1,
        8 => GgmlDType::Q8_0,
        9 => GgmlDType::Q8_1,
        10 => GgmlDType::Q2K,
        11 => GgmlDType::Q3K,
        12 => GgmlDType::Q4K,
        13 => GgmlDType::Q5K,
        14 => GgmlDType::Q6K,
        15 => GgmlDType::Q8K,
        30 => GgmlDType::BF16,
        t => return Err(format!("unsupported tensor type {t}")),
    })
}

/// Parses a GGUF header from `reader`, whose total length is `len`.
pub fn parse_header<Rd: Read>(reader: Rd, len: u64) -> Result<gguf_file::Content, String> {
    let mut r = Reader {
        inner: reader,
        pos: 0,
        len,
        metadata_bytes: 0,
    };
    let magic = r.u32()?;
    if magic != 0x4655_4747 {
        return Err(format!("bad magic {magic:#010x} (expected \"GGUF\")"));
    }
    let version = r.u32()?;
    let magic = match version {
        2 => VersionedMagic::GgufV2,
        3 => VersionedMagic::GgufV3,
        v => return Err(format!("GGUF version {v} is not supported (2 and 3 are)")),
    };
    let n_tensors = r.u64()?;
    let n_kv = r.u64()?;
    if n_tensors > MAX_TENSORS {
        return Err(format!("{n_tensors} tensors (cap {MAX_TENSORS})"));
    }
    if n_kv > MAX_METADATA_ENTRIES {
        return Err(format!(
            "{n_kv} metadata entries (cap {MAX_METADATA_ENTRIES})"
        ));
    }
    let mut metadata = HashMap::new();
    for _ in 0..n_kv {
        let key = r.string("metadata key")?;
        let ty = r.u32()?;
        let value = r.value(ty, &key, 0)?;
        if metadata.insert(key.clone(), value).is_some() {
            return Err(format!("metadata key {key} appears twice"));
        }
    }
    let alignment = match metadata.get("general.alignment") {
        None => 32,
        Some(Value::U32(a)) if a.is_power_of_two() && *a <= 1 << 20 => u64::from(*a),
        Some(v) => {
            return Err(format!(
                "general.alignment {v:?} is not a power of two <= 2^20"
            ))
        }
    };
    let mut raw = Vec::with_capacity(n_tensors as usize);
    for _ in 0..n_tensors {
        let name = r.string("tensor name")?;
        let n_dims = r.u32()?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(format!(
                "tensor {name}: {n_dims} dimensions (1..={MAX_DIMS})"
            ));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        let mut elems: u64 = 1;
        for _ in 0..n_dims {
            let d = r.u64()?;
            if d == 0 || d > MAX_DIM {
                return Err(format!("tensor {name}: dimension {d} (1..={MAX_DIM})"));
            }
            elems = elems.saturating_mul(d);
            dims.push(d as usize);
        }
        if elems > MAX_TENSOR_ELEMENTS {
            return Err(format!(
                "tensor {name}: {elems} elements (cap {MAX_TENSOR_ELEMENTS})"
            ));
        }
        let dtype = dtype_from_u32(r.u32()?).map_err(|e| format!("tensor {name}: {e}"))?;
        let offset = r.u64()?;
        if offset % alignment != 0 {
            return Err(format!(
                "tensor {name}: offset {offset} is not {alignment}-aligned"
            ));
        }
        let block = dtype.block_size() as u64;
        if !(dims[0] as u64).is_multiple_of(block) {
            return Err(format!(
                "tensor {name}: row of {} elements is not a multiple of the {dtype:?} block ({block})",
                dims[0]
            ));
        }
        let bytes = elems / block * dtype.type_size() as u64;
        dims.reverse();
        raw.push((name, dims, dtype, offset, bytes));
    }
    let data_offset = r.pos.div_ceil(alignment) * alignment;
    let data_len = len.saturating_sub(data_offset);
    let mut tensor_infos = HashMap::new();
    for (name, dims, dtype, offset, bytes) in raw {
        if offset.checked_add(bytes).is_none_or(|end| end > data_len) {
            return Err(format!(
                "tensor {name}: bytes {offset}..{} lie outside the data section ({data_len} bytes; truncated file?)",
                offset.saturating_add(bytes)
            ));
        }
        let info = TensorInfo {
            ggml_dtype: dtype,
            shape: Shape::from(dims),
            offset,
        };
        if tensor_infos.insert(name.clone(), info).is_some() {
            return Err(format!("tensor {name} appears twice"));
        }
    }
    Ok(gguf_file::Content {
        magic,
        metadata,
        tensor_infos,
        tensor_data_offset: data_offset,
    })
}

impl GgufFile {
    /// Opens and validates the header of a GGUF file (tensor data is read lazily).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, GgufError> {
        Self::open_with(path.as_ref(), None)
    }

    /// Opens a file for its header alone: metadata and the tensor table, with every cap
    /// checked but not that the tensors' bytes are present, so it also opens a skeleton
    /// (a header without tensor data, see [`crate::synth::write_skeleton`]). Reading a tensor
    /// whose bytes are missing fails.
    pub fn open_layout(path: impl AsRef<Path>) -> Result<Self, GgufError> {
        Self::open_with(path.as_ref(), Some(u64::MAX))
    }

    /// `extent`: the size the tensor table is checked against (default: the file's).
    fn open_with(path: &Path, extent: Option<u64>) -> Result<Self, GgufError> {
        let path = path.to_path_buf();
        let io = |source| GgufError::Io {
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        let content =
            parse_header(BufReader::new(file), extent.unwrap_or(file_len)).map_err(|reason| {
                GgufError::Invalid {
                    path: path.clone(),
                    reason,
                }
            })?;
        Ok(Self {
            path,
            file_len,
            content,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's size in bytes.
    pub fn len(&self) -> u64 {
        self.file_len
    }

    /// Whether the file is empty (never true for a valid file).
    pub fn is_empty(&self) -> bool {
        self.file_len == 0
    }

    /// The parsed header.
    pub fn content(&self) -> &gguf_file::Content {
        &self.content
    }

    /// A metadata value.
    pub fn meta(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    /// A string metadata value.
    pub fn meta_str(&self, key: &str) -> Option<&str> {
        match self.meta(key) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    /// An integer metadata value of any width.
    pub fn meta_u64(&self, key: &str) -> Option<u64> {
        match self.meta(key)? {
            Value::U8(v) => Some(u64::from(*v)),
            Value::U16(v) => Some(u64::from(*v)),
            Value::U32(v) => Some(u64::from(*v)),
            Value::U64(v) => Some(*v),
            Value::I8(v) => u64::try_from(*v).ok(),
            Value::I16(v) => u64::try_from(*v).ok(),
            Value::I32(v) => u64::try_from(*v).ok(),
            Value::I64(v) => u64::try_from(*v).ok(),
            _ => None,
        }
    }

    /// A float metadata value.
    pub fn meta_f64(&self, key: &str) -> Option<f64> {
        match self.meta(key)? {
            Value::F32(v) => Some(f64::from(*v)),
            Value::F64(v) => Some(*v),
            _ => self.meta_u64(key).map(|v| v as f64),
        }
    }

    /// Whether the file holds a tensor of that name.
    pub fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// Reads one tensor onto `device`.
    pub fn tensor(&self, name: &str, device: &Device) -> Result<QTensor, GgufError> {
        let err = |reason: String| GgufError::Tensor {
            path: self.path.clone(),
            name: name.to_owned(),
            reason,
        };
        let info = self
            .content
            .tensor_infos
            .get(name)
            .ok_or_else(|| err("missing from the file".into()))?;
        let bytes = (info.shape.elem_count() / info.ggml_dtype.block_size()
            * info.ggml_dtype.type_size()) as u64;
        let end = self.content.tensor_data_offset + info.offset + bytes;
        if end > self.file_len {
            return Err(err(format!(
                "its bytes end at {end}, past the end of the file ({} bytes; a skeleton or a truncated file)",
                self.file_len
            )));
        }
        let mut file = File::open(&self.path).map_err(|e| err(e.to_string()))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| err(e.to_string()))?;
        info.read(&mut file, self.content.tensor_data_offset, device)
            .map_err(|e| err(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(n_tensors: u64, n_kv: u64) -> Vec<u8> {
        let mut v = b"GGUF".to_vec();
        v.extend(3u32.to_le_bytes());
        v.extend(n_tensors.to_le_bytes());
        v.extend(n_kv.to_le_bytes());
        v
    }

    fn string(v: &mut Vec<u8>, s: &str) {
        v.extend((s.len() as u64).to_le_bytes());
        v.extend(s.as_bytes());
    }

    fn parse(bytes: &[u8]) -> Result<gguf_file::Content, String> {
        parse_header(bytes, bytes.len() as u64)
    }

    #[test]
    fn rejects_bad_magic_and_truncation() {
        assert!(parse(b"GGML....").unwrap_err().contains("bad magic"));
        assert!(parse(b"GG").unwrap_err().contains("file ends"));
        let h = header(0, 1);
        assert!(parse(&h).unwrap_err().contains("file ends"));
    }

    #[test]
    fn rejects_huge_counts_before_allocating() {
        assert!(parse(&header(u64::MAX, 0)).unwrap_err().contains("cap"));
        assert!(parse(&header(0, 1 << 40)).unwrap_err().contains("cap"));
        let mut h = header(0, 1);
        string(&mut h, "k");
        h.extend(9u32.to_le_bytes());
        h.extend(0u32.to_le_bytes());
        h.extend((1u64 << 40).to_le_bytes());
        assert!(parse(&h).unwrap_err().contains("cap"));
        let mut h = header(0, 1);
        h.extend((1u64 << 50).to_le_bytes());
        assert!(parse(&h).unwrap_err().contains("cap"));
    }

    #[test]
    fn rejects_tensor_outside_file_and_bad_dims() {
        let tensor = |dims: &[u64], ty: u32, offset: u64| {
            let mut h = header(1, 0);
            string(&mut h, "t");
            h.extend((dims.len() as u32).to_le_bytes());
            for d in dims {
                h.extend(d.to_le_bytes());
            }
            h.extend(ty.to_le_bytes());
            h.extend(offset.to_le_bytes());
            h.resize(h.len().div_ceil(32) * 32 + 64, 0);
            h
        };
        assert!(parse(&tensor(&[16], 0, 0)).is_ok());
        assert!(parse(&tensor(&[17], 0, 0)).unwrap_err().contains("outside"));
        assert!(parse(&tensor(&[16], 0, 3)).unwrap_err().contains("aligned"));
        assert!(parse(&tensor(&[0], 0, 0))
            .unwrap_err()
            .contains("dimension"));
        assert!(parse(&tensor(&[1 << 31, 1 << 31], 0, 0))
            .unwrap_err()
            .contains("elements"));
        assert!(parse(&tensor(&[30], 2, 0)).unwrap_err().contains("block"));
        assert!(parse(&tensor(&[1, 1, 1, 1, 1], 0, 0))
            .unwrap_err()
            .contains("dimensions"));
        assert!(parse(&tensor(&[16], 99, 0))
            .unwrap_err()
            .contains("unsupported"));
        assert!(parse(&tensor(&[16], 0, u64::MAX - 31))
            .unwrap_err()
            .contains("outside"));
    }

    #[test]
    fn every_truncation_of_a_valid_header_is_an_error() {
        let mut h = header(1, 2);
        string(&mut h, "general.architecture");
        h.extend(8u32.to_le_bytes());
        string(&mut h, "llama");
        string(&mut h, "arr");
        h.extend(9u32.to_le_bytes());
        h.extend(8u32.to_le_bytes());
        h.extend(2u64.to_le_bytes());
        string(&mut h, "a");
        string(&mut h, "b");
        string(&mut h, "t");
        h.extend(1u32.to_le_bytes());
        h.extend(32u64.to_le_bytes());
        h.extend(8u32.to_le_bytes());
        h.extend(0u64.to_le_bytes());
        h.resize(h.len().div_ceil(32) * 32 + 34, 0);
        let content = parse(&h).unwrap();
        assert_eq!(content.tensor_infos.len(), 1);
        for cut in 0..h.len() {
            assert!(parse(&h[..cut]).is_err(), "prefix of {cut} bytes parsed");
        }
    }
}
