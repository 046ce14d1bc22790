package exprengine

import (
	"github.com/expr-lang/expr/ast"
)

// Env analysis: which merge(env, ...) calls may write into an env the caller handed over
// (Call.EnvOwned) instead of copying it.

// inPlaceEnvMerges finds the merges that may write into the env itself when the caller hands
// it over (Call.EnvOwned) instead of into a copy: merge(env, ...) as the env of a result(...)
// whose value is the program's, in a program that uses env nowhere else but to read entries
// of it (env.k, env[k], k in env), and context only for its other fields. Such a merge is the
// last thing a run evaluates (result's output comes first), its arguments are all evaluated
// before it writes, and no value the run returns can hold the env map itself.
func inPlaceEnvMerges(root ast.Node, tail map[ast.Node]bool) map[ast.Node]bool {
	envVar, ctxVar := boundVar("env"), boundVar("context")
	isVar := func(n ast.Node, name string) bool {
		id, ok := n.(*ast.IdentifierNode)
		return ok && id.Value == name
	}
	merges := map[ast.Node]bool{}
	reads := map[ast.Node]bool{} // env identifiers whose entries are read
	safe := true
	var uses []ast.Node // every identifier naming env or context
	ast.Walk(&root, visitor(func(n ast.Node) {
		switch x := n.(type) {
		case *ast.IdentifierNode:
			switch x.Value {
			case envVar, ctxVar:
				uses = append(uses, x)
			case "$env":
				safe = false
			}
		case *ast.MemberNode:
			if isVar(x.Node, envVar) {
				reads[x.Node] = true
			}
			if readsContextField(x, ctxVar) {
				reads[x.Node] = true
			}
		case *ast.BinaryNode:
			if (x.Operator == "in" || x.Operator == "not in") && isVar(x.Right, envVar) {
				reads[x.Right] = true
			}
		case *ast.CallNode:
			switch {
			case isVar(x.Callee, boundVar(getName)) && len(x.Arguments) == 2 && isVar(x.Arguments[0], envVar):
				reads[x.Arguments[0]] = true
			case isVar(x.Callee, boundVar(inName)) && len(x.Arguments) == 2 && isVar(x.Arguments[1], envVar):
				reads[x.Arguments[1]] = true
			case tail[x] && isVar(x.Callee, boundVar("result")) && len(x.Arguments) == 2:
				if m, ok := x.Arguments[1].(*ast.CallNode); ok && isVar(m.Callee, "merge") && len(m.Arguments) > 1 && isVar(m.Arguments[0], envVar) {
					merges[m] = true
					reads[m.Arguments[0]] = true
				}
			}
		}
	}))
	for _, u := range uses {
		safe = safe && reads[u]
	}
	if !safe {
		return nil
	}
	return merges
}

// visitor adapts a function to ast.Visitor.
type visitor func(ast.Node)

func (v visitor) Visit(n *ast.Node) { v(*n) }
