// Package bundle owns everything eventrt reads from disk or from ZIP_URL before a program is
// compiled: the handler source files of a single file, a directory (a Kubernetes ConfigMap
// mount included) or a zip archive; the optional manifest (eventrt.yaml) describing several
// functions; the test-case files `eventrt test` runs; and the file watch that drives hot reload.
//
// It is pure file handling: it neither compiles nor runs programs (internal/exec does) and
// never talks to Redis. Everything it reads is bounded (Limits), so a hostile archive or a
// mistaken HANDLER_PATH=/ fails with an error instead of exhausting memory.
//
// # Layout
//
// Inside a directory or an archive, and relative to its root:
//
//	<module>/<function>.expr    function "module.function"
//	<module>.expr               function "module.handler" (a single-function module)
//	<module>.<function>.expr    function "module.function" (flat form, for ConfigMap keys)
//	_shared.expr                let bindings prepended to every function of the bundle
//	<module>/_shared.expr       let bindings prepended to every function of the module
//	<module>._shared.expr       the same, flat form
//	eventrt.yaml                the manifest (optional)
//	<function file stem>.test.yaml   test cases of the function next to it
//
// Module and function names are made of letters, digits, '_' and '-', and do not start with
// '_' or '-' (names starting with '_' are reserved). Entries whose name starts with '.' are
// ignored at every level: that skips Kubernetes' `..data` and `..2024_...` directories (the
// keys are reachable through the top-level symlinks), editor swap files and .git.
// A single program file is a bundle of one function named after its stem ("handler.expr"
// gives "handler.handler"), and any function name selects it.
//
// docs/bundles.md is the user-facing description of these rules, of the manifest and of the
// test-case format.
package bundle
