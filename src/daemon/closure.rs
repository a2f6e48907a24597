//! Closure computation: all requisites of some roots with their path infos, in dependency order.
//!
//! Layer: `daemon`. Must not know about ssh or anything above `store`.
//!
//! The walk goes wave by wave: every path discovered in one wave is queried in the next with one
//! pipelined batch of QueryPathInfo, so the cost is one round trip per level of the reference
//! graph, not one per path (Nix 2.8's own `computeFSClosure` over ssh-ng costs one per path,
//! NixOS/nix#6950).

use std::collections::{BTreeMap, BTreeSet};

use tokio::io::{AsyncRead, AsyncWrite};

use crate::store::{StorePath, ValidPathInfo};

use super::client::DaemonClient;
use super::op::Op;
use super::{Error, Result};

/// All requisites of `roots` (the roots included), references before referrers. Fails with
/// [`Error::InvalidPath`] if a root (or, impossibly, a reference) is not valid.
pub async fn closure<R, W>(
    client: &mut DaemonClient<R, W>,
    roots: &[StorePath],
) -> Result<Vec<ValidPathInfo>>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let infos = closure_map(client, roots).await?;
    Ok(topo_sort(infos))
}

/// Like [`closure`], as a map keyed by path.
pub async fn closure_map<R, W>(
    client: &mut DaemonClient<R, W>,
    roots: &[StorePath],
) -> Result<BTreeMap<StorePath, ValidPathInfo>>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let mut infos: BTreeMap<StorePath, ValidPathInfo> = BTreeMap::new();
    let mut seen: BTreeSet<StorePath> = roots.iter().cloned().collect();
    let mut wave: Vec<StorePath> = seen.iter().cloned().collect();
    while !wave.is_empty() {
        let replies = client.query_path_infos(&wave).await?;
        let mut next = Vec::new();
        for (path, info) in wave.into_iter().zip(replies) {
            let Some(info) = info else {
                return Err(Error::InvalidPath {
                    op: Op::QueryPathInfo,
                    path,
                });
            };
            for r in &info.references {
                if seen.insert(r.clone()) {
                    next.push(r.clone());
                }
            }
            infos.insert(path, info);
        }
        wave = next;
    }
    Ok(infos)
}

/// Order path infos so that every path comes after all of its references (self-references are
/// ignored). Deterministic: ties are broken by path order. References missing from `infos` are
/// treated as already present.
pub fn topo_sort(mut infos: BTreeMap<StorePath, ValidPathInfo>) -> Vec<ValidPathInfo> {
    let mut order: Vec<StorePath> = Vec::with_capacity(infos.len());
    let mut done: BTreeSet<StorePath> = BTreeSet::new();
    // Iterative post-order DFS (closures can be deep; no recursion).
    let keys: Vec<StorePath> = infos.keys().cloned().collect();
    for root in keys {
        if done.contains(&root) {
            continue;
        }
        let refs = pending_refs(&infos, &root, &done);
        done.insert(root.clone());
        let mut stack: Vec<(StorePath, Vec<StorePath>)> = vec![(root, refs)];
        while let Some((node, refs)) = stack.last_mut() {
            if let Some(next) = refs.pop() {
                if done.insert(next.clone()) {
                    let r = pending_refs(&infos, &next, &done);
                    stack.push((next, r));
                }
            } else {
                order.push(node.clone());
                stack.pop();
            }
        }
    }
    order.into_iter().filter_map(|p| infos.remove(&p)).collect()
}

fn pending_refs(
    infos: &BTreeMap<StorePath, ValidPathInfo>,
    path: &StorePath,
    done: &BTreeSet<StorePath>,
) -> Vec<StorePath> {
    let Some(info) = infos.get(path) else {
        return Vec::new();
    };
    // Reversed so that popping visits references in path order.
    info.references
        .iter()
        .rev()
        .filter(|r| *r != path && infos.contains_key(*r) && !done.contains(*r))
        .cloned()
        .collect()
}

/// The requisites of `root` within `infos` (root included).
pub fn requisites(
    infos: &BTreeMap<StorePath, ValidPathInfo>,
    root: &StorePath,
) -> BTreeSet<StorePath> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![root.clone()];
    while let Some(p) = todo.pop() {
        if !seen.insert(p.clone()) {
            continue;
        }
        if let Some(info) = infos.get(&p) {
            todo.extend(
                info.references
                    .iter()
                    .filter(|r| !seen.contains(*r))
                    .cloned(),
            );
        }
    }
    seen
}

/// Sum of narSize over the closure of `root` within `infos` (what `nix path-info -S` prints).
pub fn closure_size(infos: &BTreeMap<StorePath, ValidPathInfo>, root: &StorePath) -> u64 {
    requisites(infos, root)
        .iter()
        .filter_map(|p| infos.get(p))
        .map(|i| i.nar_size)
        .sum()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::Hash;

    fn p(c: char, name: &str) -> StorePath {
        let hash: String = std::iter::repeat_n(c, 32).collect();
        StorePath::from_base_name(&format!("{hash}-{name}")).unwrap()
    }

    fn info(path: &StorePath, refs: &[&StorePath]) -> ValidPathInfo {
        ValidPathInfo {
            path: path.clone(),
            deriver: None,
            nar_hash: Hash::sha256_of(b""),
            references: refs.iter().map(|r| (*r).clone()).collect(),
            registration_time: 0,
            nar_size: 10,
            ultimate: false,
            sigs: BTreeSet::new(),
            ca: None,
        }
    }

    #[test]
    fn references_come_first() {
        // z -> a -> m, z -> m, m -> m (self)
        let (a, m, z) = (p('a', "a"), p('m', "m"), p('z', "z"));
        let mut map = BTreeMap::new();
        map.insert(z.clone(), info(&z, &[&a, &m]));
        map.insert(a.clone(), info(&a, &[&m]));
        map.insert(m.clone(), info(&m, &[&m]));
        let order: Vec<StorePath> = topo_sort(map.clone()).into_iter().map(|i| i.path).collect();
        assert_eq!(order, vec![m.clone(), a.clone(), z.clone()]);
        assert_eq!(closure_size(&map, &z), 30);
        assert_eq!(closure_size(&map, &a), 20);
    }
}
