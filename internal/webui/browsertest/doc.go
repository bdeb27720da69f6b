// Package browsertest drives the admin web UI in a real headless Chromium
// (through chromedp) against the real oma-server binary, with the real
// vma-enroll binary enrolling a VMA. It has only tests.
//
// Chromium comes from Debian's chromium package (.ci/run installs it);
// OMA_TEST_CHROMIUM names another binary. Screenshots of each page go to
// the directory in OMA_UI_SCREENSHOTS, else to the test's temp directory.
package browsertest
