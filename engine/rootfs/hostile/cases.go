package hostile

import "strings"

var (
	longName = strings.Repeat("n", 255)
	tooLong  = strings.Repeat("n", 256)
	// deepPath is longer than PATH_MAX (4096), in few components.
	deepPath = strings.Repeat(strings.Repeat("d", 250)+"/", 17) + "f"
	// longLink is a symlink target just short of PATH_MAX; what is made
	// through it is not.
	longLink  = strings.Repeat(strings.Repeat("t", 250)+"/", 16) + "x"
	chainLink = func() string {
		// l0 -> l1 -> ... -> l44 -> $OUT: more links than resolution follows.
		var b strings.Builder
		for i := 0; i < 45; i++ {
			b.WriteString("s l" + itoa(i) + " l" + itoa(i+1) + "\n")
		}
		b.WriteString("s l45 $OUT\nf l0/pwned\n")
		return b.String()
	}()
)

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}

// Cases returns the hostile inputs. The outside directory holds the file
// "secret" and "dir/file" (MakeOutside).
func Cases() []Case {
	return []Case{
		// ".." and absolute names.
		{Name: "dotdot file", Script: "f ../outside/pwned", MustFail: true},
		{Name: "dotdot climbing to outside", Script: "f $UP/pwned", MustFail: true},
		{Name: "dotdot in the middle", Script: "d a/\nf a/../../outside/pwned", MustFail: true},
		{Name: "dotdot after dot", Script: "f ./../outside/pwned", MustFail: true},
		{Name: "dotdot directory", Script: "d ../outside/newdir/", MustFail: true},
		{Name: "dotdot symlink", Script: "s ../outside/link /etc", MustFail: true},
		{Name: "dotdot device", Script: "c ../outside/null 1 3", MustFail: true},
		{Name: "rooted dotdot", Script: "f /../outside/pwned", MustFail: true},
		{Name: "absolute name stays in the root", Script: "f $OUT/pwned\nf $OUT/secret mine"},
		{Name: "absolute directory over outside", Script: "d $OUT/\nf $OUT/dir/file mine"},
		{Name: "dotdot hardlink target", Script: "h pw ../outside/secret", MustFail: true},
		{Name: "climbing hardlink target", Script: "h pw $UP/secret", MustFail: true},
		{Name: "absolute hardlink target", Script: "h pw $OUT/secret"},
		{Name: "hardlink to the root", Script: "h pw /", MustFail: true},
		{Name: "hardlink to dot", Script: "h pw .", MustFail: true},

		// Symlink, then a write through it.
		{Name: "file through absolute symlink", Script: "s d $OUT\nf d/pwned"},
		{Name: "file through climbing symlink", Script: "s up ../../../../../../../../../..\nf up/$UP/pwned"},
		{Name: "file through symlink to climb", Script: "s d $UP\nf d/pwned"},
		{Name: "file over symlink to outside file", Script: "s s $OUT/secret\nf s mine"},
		{Name: "file through symlink chain", Script: "d a/\ns a/l1 ../l2\ns l2 $OUT\nf a/l1/pwned"},
		{Name: "directory through symlink", Script: "s d $OUT\nd d/newdir/\nf d/newdir/x"},
		{Name: "file through symlink to missing directories", Script: "s d $OUT/new/deeper\nf d/pwned"},
		{Name: "opaque through symlink to missing directories", Script: "s d $OUT/new/deeper\nf d/.wh..wh..opq"},
		{Name: "symlink through symlink", Script: "s d $OUT\ns d/link /etc"},
		{Name: "device through symlink", Script: "s d $OUT\nc d/null 1 3"},
		{Name: "fifo through symlink", Script: "s d $OUT\np d/fifo"},
		{Name: "hardlink placed through symlink", Script: "f etc/passwd root\ns d $OUT\nh d/pw etc/passwd"},
		{Name: "file through symlink to proc root", Script: "s p /proc/self/root$OUT\nf p/pwned"},
		{Name: "file through symlink with slashes", Script: "s d $OUT//./\nf d//pwned"},
		{Name: "file through symlink, across layers", Script: "s d $OUT\n--\nf d/pwned"},
		{Name: "file through climbing symlink, across layers", Script: "s d $UP\n--\nd d/newdir/\n--\nf d/newdir/pwned"},
		{Name: "file over symlink to outside, across layers", Script: "s s $OUT/secret\n--\nf s mine"},
		{Name: "file through symlink in a later parent", Script: "d a/\nd a/b/\n--\ns a/b $OUT\n--\nf a/b/pwned"},

		// Hardlinks.
		{Name: "hardlink through symlinked parent", Script: "s l $OUT\nh pw l/secret"},
		{Name: "hardlink through symlink, across layers", Script: "s l $OUT\n--\nh pw l/secret\n--\nf pw mine"},
		{Name: "hardlink to a symlink to outside", Script: "s s $OUT/secret\nh h s\n--\nf h mine"},
		{Name: "hardlink to a directory", Script: "d etc/\nh pw etc", MustFail: true},
		{Name: "hardlink to itself", Script: "h pw pw", MustFail: true},
		{Name: "hardlink to a missing target", Script: "h pw nothere", MustFail: true},

		// Whiteouts and opaque markers.
		{Name: "dotdot whiteout", Script: "f ../outside/.wh.secret", MustFail: true},
		{Name: "dotdot opaque", Script: "f ../outside/.wh..wh..opq", MustFail: true},
		{Name: "whiteout through symlink", Script: "s d $OUT\nf d/.wh.secret"},
		{Name: "whiteout through symlink, across layers", Script: "s d $OUT\n--\nf d/.wh.secret\nf d/.wh.dir"},
		{Name: "whiteout of a symlink to outside", Script: "s s $OUT\n--\nf .wh.s"},
		{Name: "whiteout of a directory holding a symlink out", Script: "d d/\ns d/s $OUT\n--\nf .wh.d"},
		{Name: "whiteout named dotdot", Script: "d a/\nf a/b\n--\nf a/.wh..\nf .wh.."},
		{Name: "whiteout through climbing symlink", Script: "s up $UP\n--\nf up/.wh.secret"},
		{Name: "opaque through symlink", Script: "s d $OUT\nf d/.wh..wh..opq"},
		{Name: "opaque through symlink, across layers", Script: "s d $OUT\n--\nf d/.wh..wh..opq"},
		{Name: "opaque through climbing symlink", Script: "s d $UP/dir\n--\nd d/\nf d/.wh..wh..opq"},
		{Name: "opaque at the root", Script: "f a\n--\nf .wh..wh..opq"},
		{Name: "opaque over a directory with a symlink out", Script: "d d/\ns d/s $OUT\n--\nf d/.wh..wh..opq"},

		// Devices.
		{Name: "character device", Script: "d dev/\nc dev/null 1 3\nc dev/mem 1 1"},
		{Name: "block device", Script: "b disk 8 0"},
		{Name: "device replacing outside by absolute name", Script: "c $OUT/secret 1 3"},
		{Name: "fifo over symlink to outside", Script: "s f $OUT/secret\n--\np f"},

		// Very long names.
		{Name: "longest component", Script: Script("f " + longName)},
		{Name: "component too long", Script: Script("f " + tooLong)},
		{Name: "deep path", Script: Script("f " + deepPath)},
		{Name: "long symlink target", Script: Script("s l " + longLink + "\nf l/pwned")},
		{Name: "long hardlink names", Script: Script("f " + longName + "\nh " + longName + "x " + longName)},

		// Symlink loops.
		{Name: "symlink loop", Script: "s a b\ns b a\nf a/x"},
		{Name: "symlink to itself", Script: "s a a\nf a/x"},
		{Name: "symlink loop across layers", Script: "s a b\n--\ns b a\n--\nf a/x"},
		{Name: "symlink chain longer than the limit", Script: Script(chainLink)},
		{Name: "symlink to dot", Script: "s self .\nf self/self/self/x"},
		{Name: "symlink to dotdot", Script: "s up ..\nf up/up/up/x"},

		// Type changes between layers.
		{Name: "file, then directory", Script: "f x\n--\nd x/\n--\nf x/y"},
		{Name: "directory, then file", Script: "d x/\nf x/y\n--\nf x"},
		{Name: "directory, then symlink out, then file", Script: "d x/\nf x/y\n--\ns x $OUT\n--\nf x/pwned"},
		{Name: "symlink out, then directory", Script: "s x $OUT\n--\nd x/\n--\nf x/y"},
		{Name: "file, then symlink out, then hardlink", Script: "f x\n--\ns x $OUT/secret\n--\nh y x"},
		{Name: "directories, then symlink out, in one layer", Script: "d x/\nd x/sub/\ns x $OUT\nd y/\ns y $OUT/dir"},
		{Name: "directory, then fifo", Script: "d x/\nf x/y\n--\np x"},
		{Name: "symlink out, then device", Script: "s x $OUT\n--\nc x 1 3"},
	}
}
