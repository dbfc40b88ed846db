// Package buildscripts tests the shell scripts that run at image build time
// (rootfs/usr/lib/hermes-s6/install-user-bundle), outside Docker, on fake
// image trees laid out as s6-overlay's tarballs lay them out.
package buildscripts
