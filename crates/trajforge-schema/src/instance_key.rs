//! Normalised task keys for decontamination.
//!
//! Benchmarks and training sets name the same upstream pull request in different ways:
//! SWE-bench `astropy__astropy-12907`, SWE-rebench `Owner__Repo-12907`, SWE-smith
//! `pydantic__pydantic.acb0f10f.pr_9848_0`. All reduce to `owner/repo#PR` (lowercased), or
//! `owner/repo@commit` for synthetic tasks tied to a commit rather than a PR.

/// The key for an instance id, or `None` when it names no repository.
pub fn instance_key(instance_id: &str) -> Option<String> {
    let (owner, rest) = instance_id.trim().split_once("__")?;
    if owner.is_empty() || rest.is_empty() {
        return None;
    }
    let owner = owner.to_ascii_lowercase();
    if let Some((repo, commit, suffix)) = split_commit(rest) {
        let repo = repo.to_ascii_lowercase();
        return Some(match pr_number(suffix) {
            Some(pr) => format!("{owner}/{repo}#{pr}"),
            None => format!("{owner}/{repo}@{}", commit.to_ascii_lowercase()),
        });
    }
    let (repo, number) = rest.rsplit_once('-')?;
    if repo.is_empty() || number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!("{owner}/{}#{number}", repo.to_ascii_lowercase()))
}

/// `pydantic.acb0f10f.pr_9848_0` → (`pydantic`, `acb0f10f`, `pr_9848_0`).
fn split_commit(rest: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = rest.split('.').collect();
    // The commit is the last segment of 7–40 hex digits that has a repo name before it.
    (1..parts.len()).rev().find_map(|i| {
        let seg = parts[i];
        let is_commit = (7..=40).contains(&seg.len()) && seg.bytes().all(|b| b.is_ascii_hexdigit());
        if !is_commit {
            return None;
        }
        let repo_end = parts[..i].iter().map(|p| p.len() + 1).sum::<usize>() - 1;
        let suffix_start = (repo_end + 1 + seg.len() + 1).min(rest.len());
        Some((&rest[..repo_end], seg, &rest[suffix_start..]))
    })
}

fn pr_number(suffix: &str) -> Option<&str> {
    let after = suffix.split("pr_").nth(1)?;
    let end = after
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(after.len());
    (end > 0).then(|| &after[..end])
}

#[cfg(test)]
mod tests {
    use super::instance_key;

    #[test]
    fn swe_bench_style_ids() {
        assert_eq!(
            instance_key("astropy__astropy-12907").as_deref(),
            Some("astropy/astropy#12907")
        );
        assert_eq!(
            instance_key("scikit-learn__scikit-learn-10297").as_deref(),
            Some("scikit-learn/scikit-learn#10297")
        );
        assert_eq!(
            instance_key("Owner__My.Repo-7").as_deref(),
            Some("owner/my.repo#7")
        );
    }

    #[test]
    fn swe_smith_style_ids() {
        assert_eq!(
            instance_key("pydantic__pydantic.acb0f10f.pr_9848_0").as_deref(),
            Some("pydantic/pydantic#9848")
        );
        assert_eq!(
            instance_key("pandas-dev__pandas.95280573.func_pm_op_swap__abc").as_deref(),
            Some("pandas-dev/pandas@95280573")
        );
    }

    #[test]
    fn ids_without_a_repository() {
        assert_eq!(instance_key("no-separator-12"), None);
        assert_eq!(instance_key("owner__repo"), None);
        assert_eq!(instance_key("__repo-1"), None);
        assert_eq!(instance_key("owner__repo-12a"), None);
    }
}
