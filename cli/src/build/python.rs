//! Python agents: made components by componentize-py, pinned
//! (`agent-sdk/python/requirements-build.txt`), installed on first use into
//! a toolchain directory of its own, so nothing is installed globally.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use orchestr8_host::ErrorCode;
use orchestr8_host::project::PYTHON_APP;

use crate::error::{Failure, exit, report};
use crate::output;
use crate::scaffold::{PY_SDK_DIR, PY_TOOLCHAIN_PINS};

/// An installed componentize-py.
pub struct PythonToolchain {
    componentize: PathBuf,
}

impl PythonToolchain {
    /// The toolchain under `dir` (one folder per pin), installed with the
    /// machine's `python3` (venv + pip, packages from PyPI) when missing.
    pub fn ensure(dir: &Path) -> Result<PythonToolchain, Failure> {
        let pin = PY_TOOLCHAIN_PINS
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .unwrap_or("componentize-py");
        let home = dir.join(pin.replace("==", "-"));
        let componentize = home.join("bin").join("componentize-py");
        let pins = home.join("requirements.txt");
        let installed = std::fs::read_to_string(&pins).is_ok_and(|p| p == PY_TOOLCHAIN_PINS);
        if installed && componentize.is_file() {
            return Ok(PythonToolchain { componentize });
        }
        output::notice(&format!(
            "installing the Python agent toolchain ({pin}) into {}…",
            home.display()
        ));
        let venv = Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&home)
            .stdout(Stdio::null())
            .status();
        match venv {
            Ok(s) if s.success() => {}
            Ok(_) => {
                return Err(failed(
                    "`python3 -m venv` failed (on Debian and Ubuntu: apt-get install python3-venv)",
                ));
            }
            Err(_) => {
                return Err(failed(
                    "building Python agents needs Python 3.10 or newer (`python3` with venv and pip): install it and try again",
                ));
            }
        }
        let write = std::fs::write(home.join("requirements.in"), PY_TOOLCHAIN_PINS);
        write.map_err(|e| failed(&format!("cannot write into `{}`: {e}", home.display())))?;
        let pip = Command::new(home.join("bin").join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(home.join("requirements.in"))
            .stdout(Stdio::null())
            .status();
        if !pip.is_ok_and(|s| s.success()) {
            return Err(failed(&format!(
                "installing {pin} with pip failed (see its output above); it needs the Python package registry"
            )));
        }
        std::fs::write(&pins, PY_TOOLCHAIN_PINS)
            .map_err(|e| failed(&format!("cannot write `{}`: {e}", pins.display())))?;
        Ok(PythonToolchain { componentize })
    }

    /// Builds the agent in `dir` (its `app.py`, with the project's vendored
    /// SDK) into the component `out`, atomically.
    pub fn build(&self, root: &Path, dir: &Path, id: &str, out: &Path) -> Result<(), Failure> {
        let sdk = root.join(PY_SDK_DIR);
        let module = Path::new(PYTHON_APP)
            .file_stem()
            .map_or("app".into(), |s| s.to_string_lossy().into_owned());
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| failed(&format!("cannot create `{}`: {e}", parent.display())))?;
        }
        let tmp = out.with_extension("wasm.tmp");
        let status = Command::new(&self.componentize)
            .arg("-d")
            .arg(sdk.join("wit"))
            .args(["-w", "agent", "componentize", &module, "-p"])
            .arg(dir)
            .arg("-p")
            .arg(&sdk)
            .arg("-o")
            .arg(&tmp)
            .current_dir(root)
            .stdout(Stdio::null())
            .status()
            .map_err(|e| failed(&format!("cannot run componentize-py: {e}")))?;
        if !status.success() {
            return Err(report(
                ErrorCode::InvalidAgent,
                &format!("building `{id}` failed: see componentize-py's output above"),
                exit::FAILED,
            ));
        }
        std::fs::rename(&tmp, out)
            .map_err(|e| failed(&format!("cannot write `{}`: {e}", out.display())))
    }
}

fn failed(message: &str) -> Failure {
    report(ErrorCode::Internal, message, exit::FAILED)
}
