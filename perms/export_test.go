package perms

// withFallbacks runs f once with openat2/fchmodat2 allowed and once with
// both forced onto their fallbacks (as under a seccomp profile that refuses
// them), as a subtest each.
func forceFallbacks(on bool) func() {
	prevO, prevC := forceOpenatFallback.Load(), forceFchmodFallback.Load()
	forceOpenatFallback.Store(on)
	forceFchmodFallback.Store(on)
	return func() {
		forceOpenatFallback.Store(prevO)
		forceFchmodFallback.Store(prevC)
	}
}
