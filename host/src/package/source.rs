//! Where packages come from: a manifest file (or a directory holding one),
//! an `http(s)://` URL of a manifest (the component next to it), or an OCI
//! registry reference `oci://host/repo:tag`.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{MAX_COMPONENT_BYTES, MAX_MANIFEST_BYTES, Package, PackageError, oci};

/// A package source, as given on the command line or in the lockfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A manifest file, or a directory holding exactly one.
    Path(PathBuf),
    /// The URL of a manifest.
    Http(String),
    /// An OCI reference, without the `oci://`.
    Oci(String),
}

impl Source {
    /// Reads a source: `oci://…`, `http(s)://…`, or a path.
    pub fn parse(text: &str) -> Source {
        if let Some(reference) = text.strip_prefix("oci://") {
            Source::Oci(reference.to_string())
        } else if text.starts_with("http://") || text.starts_with("https://") {
            Source::Http(text.to_string())
        } else {
            Source::Path(PathBuf::from(text))
        }
    }

    /// Fetches the package (not yet verified).
    pub async fn fetch(&self) -> Result<Package, PackageError> {
        match self {
            Source::Path(path) => read_dir_or_file(path),
            Source::Http(url) => fetch_http(url).await,
            Source::Oci(reference) => oci::pull(reference).await,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Path(path) => write!(f, "{}", path.display()),
            Source::Http(url) => f.write_str(url),
            Source::Oci(reference) => write!(f, "oci://{reference}"),
        }
    }
}

fn read_dir_or_file(path: &Path) -> Result<Package, PackageError> {
    let manifest_path = if path.is_dir() {
        let entries =
            std::fs::read_dir(path).map_err(|e| PackageError::unreachable(path.display(), e))?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(".agent.json"))
            .collect();
        match found.len() {
            1 => found.remove(0),
            0 => {
                return Err(PackageError::unreachable(
                    path.display(),
                    "no *.agent.json manifest in it",
                ));
            }
            n => {
                return Err(PackageError::unreachable(
                    path.display(),
                    format!("{n} manifests in it: name the one to install"),
                ));
            }
        }
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read(&manifest_path)
        .map_err(|e| PackageError::unreachable(manifest_path.display(), e))?;
    let manifest = Package::parse_manifest(&text, &manifest_path.display().to_string())?;
    let component_path = manifest_path
        .parent()
        .unwrap_or(Path::new("."))
        .join(&manifest.component.file);
    let component = std::fs::read(&component_path)
        .map_err(|e| PackageError::unreachable(component_path.display(), e))?;
    Ok(Package {
        manifest,
        component,
    })
}

async fn get(client: &reqwest::Client, url: &str, limit: usize) -> Result<Vec<u8>, PackageError> {
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(|e| PackageError::unreachable(url, e))?;
    if !response.status().is_success() {
        return Err(PackageError::unreachable(
            url,
            format!("the server answered {}", response.status()),
        ));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| PackageError::unreachable(url, e))?
    {
        if body.len() + chunk.len() > limit {
            return Err(PackageError::unreachable(
                url,
                format!("larger than {limit} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn fetch_http(url: &str) -> Result<Package, PackageError> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .map_err(|e| PackageError::unreachable(url, e))?;
    let text = get(&client, url, MAX_MANIFEST_BYTES).await?;
    let manifest = Package::parse_manifest(&text, url)?;
    let base = reqwest::Url::parse(url).map_err(|e| PackageError::unreachable(url, e))?;
    let component_url = base
        .join(&manifest.component.file)
        .map_err(|e| PackageError::unreachable(url, e))?;
    let component = get(&client, component_url.as_str(), MAX_COMPONENT_BYTES).await?;
    Ok(Package {
        manifest,
        component,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_told_apart_by_their_scheme() {
        assert_eq!(
            Source::parse("oci://127.0.0.1:5000/agents/x:1.0.0"),
            Source::Oci("127.0.0.1:5000/agents/x:1.0.0".into())
        );
        assert!(matches!(
            Source::parse("https://h/x.agent.json"),
            Source::Http(_)
        ));
        assert!(matches!(Source::parse("dist"), Source::Path(_)));
        assert_eq!(
            Source::parse("oci://r/a:1").to_string(),
            "oci://r/a:1",
            "a source prints as given, for the lockfile"
        );
    }
}
