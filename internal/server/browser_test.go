package server_test

// Browser tests: the UI in a real headless Chromium, driven with chromedp.

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

var screenshots = flag.String("screenshots", "", "directory to keep the browser tests' screenshots in (scripts/screenshots gives docs/screenshots)")

// chromium returns the path of the Chromium binary, skipping the test when
// there is none (failing when HANGAR_REQUIRE_BROWSER=1, as in CI).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg = "no Chromium to drive (Debian: apt-get install chromium; scripts/test installs it)"
	if os.Getenv("HANGAR_REQUIRE_BROWSER") == "1" {
		t.Fatal(msg + ", and HANGAR_REQUIRE_BROWSER=1")
	}
	t.Skip(msg)
	return ""
}

// newBrowser starts a headless Chromium of its own, ended with the test.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 860),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first call starts the browser, which lives as long as its
	// context: no timeout on that one.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	// The test's steps get two minutes in all.
	ctx, cancelRun := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancelRun)
	return ctx
}

// signInBrowser signs the browser in through the sign-in form.
func signInBrowser(t *testing.T, ctx context.Context, e *env) {
	t.Helper()
	err := chromedp.Do(ctx,
		chromedp.Navigate(e.url+"/pipelines"),
		chromedp.WaitVisible(chromedp.CSS(`input[name=token]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=token]`), apiToken),
		chromedp.Submit(chromedp.CSS(`input[name=token]`)),
		chromedp.WaitVisible(chromedp.CSS(`form.filter`)), // the pipelines page
	)
	if err != nil {
		t.Fatalf("sign in: %v", err)
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil || !strings.HasPrefix(title, "Pipelines") {
		t.Fatalf("after signing in the page is %q (%v)", title, err)
	}
}

// shoot keeps a screenshot of the page as name.png when -screenshots is
// given.
func shoot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if *screenshots == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(*screenshots, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(*screenshots, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBrowserLiveLog opens a running job's page and watches lines appear
// as the job prints them, without the page reloading.
func TestBrowserLiveLog(t *testing.T) {
	requireBash(t)
	ctx := newBrowser(t)
	e := newEnv(t, 30*time.Second)
	e.startAgent("builder-1", nil)
	gates := t.TempDir()
	p := e.submit(map[string]string{".gitlab-ci.yml": fmt.Sprintf(`
stages: [build, test, deploy]
build:
  stage: build
  script:
    - echo "compiling the shop"
    - printf '\033[32mfirst line\033[0m\n'
    - while [ ! -e %[1]s/one ]; do sleep 0.05; done
    - echo "second line"
    - while [ ! -e %[1]s/two ]; do sleep 0.05; done
lint:
  stage: build
  script: [echo linted]
unit tests:
  stage: test
  needs: [build]
  script: [echo tested]
integration:
  stage: test
  needs: [build, lint]
  script: [echo integrated]
deploy:
  stage: deploy
  script: [echo deployed]
`, gates)})
	signInBrowser(t, ctx, e)
	build := jobNamed(t, p, "build")
	_, err := chromedp.Run(ctx, chromedp.Steps(
		chromedp.Navigate(fmt.Sprintf("%s/jobs/%d", e.url, build.ID)),
		chromedp.WaitVisible(chromedp.CSS(`#log`)),
	))
	if err == nil {
		// The page lives on while this stays set: a reload would clear it.
		_, err = chromedp.Run(ctx, chromedp.Evaluate[string](`window.hangarMarker = "same page"`))
	}
	if err == nil {
		err = chromedp.Do(ctx, chromedp.WaitVisible(`//pre[@id="log"]//span[contains(., "first line")]`))
	}
	if err != nil {
		t.Fatalf("open the running job: %v", err)
	}
	if err := os.WriteFile(filepath.Join(gates, "one"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(ctx, chromedp.WaitVisible(`//pre[@id="log"]//span[contains(., "second line")]`))
	var marker string
	if err == nil {
		marker, err = chromedp.Run(ctx, chromedp.Evaluate[string](`window.hangarMarker || "reloaded"`))
	}
	if err != nil {
		t.Fatalf("wait for the second line: %v", err)
	}
	if marker != "same page" {
		t.Errorf("the second line came with a reload (%q); want it appended live", marker)
	}
	colored, err := chromedp.Run(ctx, chromedp.AttributeValue(`//pre[@id="log"]//span[text()="first line"]`, "class"))
	if err != nil || colored.Value != "ansi-fg-2" {
		t.Errorf("the green line's class: %q (%v), want ansi-fg-2", colored.Value, err)
	}
	shoot(t, ctx, "job")
	if err := os.WriteFile(filepath.Join(gates, "two"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	e.wait(p.ID, time.Minute)
	// The finished job's page says so: the stream's end reloads it.
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`//h1/span[contains(@class, "status-success")]`)); err != nil {
		t.Errorf("the page does not show the job's success: %v", err)
	}
	for _, page := range []struct{ name, path string }{
		{"pipelines", "/pipelines"},
		{"pipeline", fmt.Sprintf("/pipelines/%d", p.ID)},
		{"runners", "/runners"},
		{"status", "/status"},
		{"analytics", "/analytics?days=1"},
	} {
		if err := chromedp.Do(ctx, chromedp.Navigate(e.url+page.path), chromedp.WaitVisible(chromedp.CSS(`main h1`))); err != nil {
			t.Fatalf("open %s: %v", page.path, err)
		}
		shoot(t, ctx, page.name)
	}
}

// TestBrowserCancelPipeline cancels a running pipeline with its page's
// button.
func TestBrowserCancelPipeline(t *testing.T) {
	requireBash(t)
	ctx := newBrowser(t)
	e := newEnv(t, 30*time.Second)
	e.startAgent("builder-1", nil)
	p := e.submit(map[string]string{".gitlab-ci.yml": "slow:\n  script: [echo started, sleep 600]\nlater:\n  stage: deploy\n  script: [echo never]\n"})
	signInBrowser(t, ctx, e)
	err := chromedp.Do(ctx,
		chromedp.Navigate(fmt.Sprintf("%s/pipelines/%d", e.url, p.ID)),
		chromedp.WaitVisible(chromedp.CSS(`button[data-action=cancel-pipeline]`)),
		chromedp.Click(chromedp.CSS(`button[data-action=cancel-pipeline]`)),
		chromedp.WaitVisible(`//h1/span[contains(@class, "status-canceled")]`),
	)
	if err != nil {
		t.Fatalf("cancel from the pipeline's page: %v", err)
	}
	if got := e.wait(p.ID, 30*time.Second); got.Status != "canceled" {
		t.Errorf("the pipeline is %s after its Cancel button, want canceled", got.Status)
	}
}

// requireBash skips tests whose jobs need bash.
func requireBash(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is missing: the shell executor needs it")
	}
}
