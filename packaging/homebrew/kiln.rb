# Homebrew formula for kiln: builds both binaries from source with cargo, and installs
# their man pages and shell completions. Use from a tap:
#   brew install --build-from-source ./packaging/homebrew/kiln.rb
class Kiln < Formula
  desc "Run AI coding agents on fleets of machines"
  homepage "https://github.com/kiln-dev/kiln"
  url "https://github.com/kiln-dev/kiln.git", branch: "main"
  version "0.1.0"
  license "Apache-2.0"
  head "https://github.com/kiln-dev/kiln.git", branch: "main"

  depends_on "rust" => :build
  depends_on "git"

  def install
    system "cargo", "install", "--locked", *std_cargo_args(path: "control-plane")
    system "cargo", "install", "--locked", *std_cargo_args(path: "runner")

    mkdir "man1"
    system bin/"kiln", "man", "man1"
    system bin/"kiln-runner", "man", "man1"
    man1.install Dir["man1/*.1"]

    generate_completions_from_executable(bin/"kiln", "completions")
    generate_completions_from_executable(bin/"kiln-runner", "completions")
  end

  service do
    run [opt_bin/"kiln-runner", "run"]
    keep_alive true
    log_path var/"log/kiln-runner.log"
    error_log_path var/"log/kiln-runner.log"
  end

  test do
    assert_match "kiln-runner #{version}", shell_output("#{bin}/kiln-runner --version")
    assert_match "kiln #{version}", shell_output("#{bin}/kiln --version")
    assert_match "_kiln", shell_output("#{bin}/kiln completions bash")
  end
end
