//! `git status --porcelain=v2 -z --untracked-files=all`, parsed into types.

use std::path::PathBuf;

use crate::error::Result;
use crate::git::{Git, bytes_path};

/// What happened to a path on one side (index or working tree) of a status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Unmodified,
    Modified,
    TypeChanged,
    Added,
    Deleted,
    Renamed,
    Copied,
    Unmerged,
}

impl Change {
    fn from_code(c: u8) -> Option<Change> {
        Some(match c {
            b'.' => Change::Unmodified,
            b'M' => Change::Modified,
            b'T' => Change::TypeChanged,
            b'A' => Change::Added,
            b'D' => Change::Deleted,
            b'R' => Change::Renamed,
            b'C' => Change::Copied,
            b'U' => Change::Unmerged,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A tracked path changed in the index (`staged`) or the working tree (`unstaged`).
    Changed {
        path: PathBuf,
        staged: Change,
        unstaged: Change,
        submodule: bool,
    },
    /// A rename or copy recorded in the index.
    Renamed {
        path: PathBuf,
        from: PathBuf,
        staged: Change,
        unstaged: Change,
    },
    Unmerged {
        path: PathBuf,
    },
    /// Untracked; a trailing `/` means a directory git would not descend, such as a nested
    /// repository.
    Untracked {
        path: PathBuf,
    },
    Ignored {
        path: PathBuf,
    },
}

impl Entry {
    pub fn path(&self) -> &PathBuf {
        match self {
            Entry::Changed { path, .. }
            | Entry::Renamed { path, .. }
            | Entry::Unmerged { path }
            | Entry::Untracked { path }
            | Entry::Ignored { path } => path,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// `None` before the first commit.
    pub head: Option<String>,
    /// `None` on a detached HEAD.
    pub branch: Option<String>,
    pub entries: Vec<Entry>,
}

impl Status {
    pub(crate) fn read(git: &Git) -> Result<Status> {
        let out = git.run(&[
            "status",
            "--porcelain=v2",
            "-z",
            "--branch",
            "--untracked-files=all",
            "--ignore-submodules=none",
            "--no-renames",
        ])?;
        Ok(parse(&out))
    }

    /// Tracked changes, staged or not.
    pub fn changed(&self) -> impl Iterator<Item = &PathBuf> {
        self.entries.iter().filter_map(|e| match e {
            Entry::Changed { path, .. }
            | Entry::Renamed { path, .. }
            | Entry::Unmerged { path } => Some(path),
            Entry::Untracked { .. } | Entry::Ignored { .. } => None,
        })
    }

    pub fn untracked(&self) -> impl Iterator<Item = &PathBuf> {
        self.entries.iter().filter_map(|e| match e {
            Entry::Untracked { path } => Some(path),
            Entry::Changed { .. }
            | Entry::Renamed { .. }
            | Entry::Unmerged { .. }
            | Entry::Ignored { .. } => None,
        })
    }
}

/// Parses porcelain v2 `-z` output. Lines it does not know are skipped, as git documents new
/// header lines may appear.
pub fn parse(out: &[u8]) -> Status {
    let mut status = Status::default();
    let mut records = out.split(|b| *b == 0).filter(|r| !r.is_empty());
    while let Some(rec) = records.next() {
        match rec.first() {
            Some(b'#') => header(&mut status, rec),
            Some(b'1') => {
                if let Some([xy, sub, .., path]) = fields(rec, 9).as_deref() {
                    let (staged, unstaged) = xy_changes(xy);
                    status.entries.push(Entry::Changed {
                        path: bytes_path(path),
                        staged,
                        unstaged,
                        submodule: sub.first() == Some(&b'S'),
                    });
                }
            }
            Some(b'2') => {
                let from = records.next().map(bytes_path).unwrap_or_default();
                if let Some([xy, .., path]) = fields(rec, 10).as_deref() {
                    let (staged, unstaged) = xy_changes(xy);
                    status.entries.push(Entry::Renamed {
                        path: bytes_path(path),
                        from,
                        staged,
                        unstaged,
                    });
                }
            }
            Some(b'u') => {
                if let Some([.., path]) = fields(rec, 11).as_deref() {
                    status.entries.push(Entry::Unmerged {
                        path: bytes_path(path),
                    });
                }
            }
            Some(b'?') => status.entries.push(Entry::Untracked {
                path: bytes_path(rec.get(2..).unwrap_or_default()),
            }),
            Some(b'!') => status.entries.push(Entry::Ignored {
                path: bytes_path(rec.get(2..).unwrap_or_default()),
            }),
            _ => {}
        }
    }
    status
}

fn header(status: &mut Status, rec: &[u8]) {
    let text = String::from_utf8_lossy(rec);
    if let Some(oid) = text.strip_prefix("# branch.oid ") {
        status.head = (oid != "(initial)").then(|| oid.to_owned());
    } else if let Some(head) = text.strip_prefix("# branch.head ") {
        status.branch = (head != "(detached)").then(|| head.to_owned());
    }
}

/// Splits a record into `n` space-separated fields; the last one (the path) may hold spaces.
fn fields(rec: &[u8], n: usize) -> Option<Vec<&[u8]>> {
    let parts: Vec<&[u8]> = rec.splitn(n, |b| *b == b' ').skip(1).collect();
    (parts.len() == n - 1).then_some(parts)
}

fn xy_changes(xy: &[u8]) -> (Change, Change) {
    let x = xy.first().and_then(|c| Change::from_code(*c));
    let y = xy.get(1).and_then(|c| Change::from_code(*c));
    (x.unwrap_or(Change::Modified), y.unwrap_or(Change::Modified))
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    #[test]
    fn parses_every_record_kind_with_spaces_and_newlines_in_paths() {
        let oid = "0123456789012345678901234567890123456789";
        let out = format!(
            "# branch.oid {oid}\0# branch.head kaged/a/1\0\
             1 .M N... 100644 100644 100644 {oid} {oid} a file\nwith newline\0\
             1 A. N... 000000 100755 100755 {oid} {oid} run.sh\0\
             2 R. N... 100644 100644 100644 {oid} {oid} R100 new name\0old name\0\
             u UU N... 100644 100644 100644 100644 {oid} {oid} {oid} both\0\
             ? untracked dir/x y\0? nested/\0! target/out\0"
        );
        let status = parse(out.as_bytes());
        assert_eq!(
            status,
            Status {
                head: Some(oid.to_owned()),
                branch: Some("kaged/a/1".to_owned()),
                entries: vec![
                    Entry::Changed {
                        path: "a file\nwith newline".into(),
                        staged: Change::Unmodified,
                        unstaged: Change::Modified,
                        submodule: false,
                    },
                    Entry::Changed {
                        path: "run.sh".into(),
                        staged: Change::Added,
                        unstaged: Change::Unmodified,
                        submodule: false,
                    },
                    Entry::Renamed {
                        path: "new name".into(),
                        from: "old name".into(),
                        staged: Change::Renamed,
                        unstaged: Change::Unmodified,
                    },
                    Entry::Unmerged {
                        path: "both".into()
                    },
                    Entry::Untracked {
                        path: "untracked dir/x y".into()
                    },
                    Entry::Untracked {
                        path: "nested/".into()
                    },
                    Entry::Ignored {
                        path: "target/out".into()
                    },
                ],
            }
        );
    }

    #[test]
    fn initial_commit_and_detached_head_are_none() {
        let status = parse(b"# branch.oid (initial)\0# branch.head (detached)\0");
        assert_eq!(status.head, None);
        assert_eq!(status.branch, None);
    }
}
