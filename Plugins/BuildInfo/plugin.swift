import PackagePlugin

/// Writes BuildCommit.swift, the git commit the `duo` executable is built from, for
/// `duo --version`. It runs before every build and rewrites the file only when the commit
/// changes (so an unchanged tree recompiles nothing); outside a git checkout, or without
/// git, the commit reads "unknown".
@main
struct BuildInfo: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let output = context.pluginWorkDirectory.appending("BuildCommit.swift")
        let package = context.package.directory.string
        let script = """
            commit=$(git -C "$1" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
            if [ "$commit" != unknown ] && [ -n "$(git -C "$1" status --porcelain \
                --untracked-files=no 2>/dev/null)" ]; then commit="$commit+changes"; fi
            text="let buildCommit = \\"$commit\\""
            [ "$(cat "$2" 2>/dev/null)" = "$text" ] || printf '%s\\n' "$text" > "$2"
            """
        return [
            .prebuildCommand(
                displayName: "Recording the commit duo is built from",
                executable: Path("/bin/sh"),
                arguments: ["-c", script, "build-info", package, output.string],
                outputFilesDirectory: context.pluginWorkDirectory)
        ]
    }
}
