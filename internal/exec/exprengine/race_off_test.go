//go:build !race

package exprengine

const raceEnabled = false
