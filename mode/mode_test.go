package mode

import "testing"

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Mode
		err  bool
	}{
		{"", Open, false}, {"open", Open, false}, {"sealed", Sealed, false}, {" sealed\n", Sealed, false},
		{"Sealed", "", true}, {"seal", "", true}, {"closed", "", true}, {"open,sealed", "", true},
	} {
		got, err := Parse(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("Parse(%q) = %q, %v; want %q, err=%v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestFromFlagOrEnv(t *testing.T) {
	env := func(v string) func(string) string { return func(string) string { return v } }
	if m, _ := FromFlagOrEnv("", false, env("sealed")); m != Sealed {
		t.Errorf("env sealed, no flag: %q", m)
	}
	if m, _ := FromFlagOrEnv("open", true, env("sealed")); m != Open {
		t.Errorf("flag open wins over env sealed: %q", m)
	}
	if _, err := FromFlagOrEnv("", false, env("bogus")); err == nil {
		t.Error("env bogus: no error")
	}
}
