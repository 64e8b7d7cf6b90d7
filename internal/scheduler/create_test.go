package scheduler_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/scheduler"
	"github.com/hangar-ci/hangar/internal/store"
)

// A created job's spec carries its image, services, artifacts, caches and
// dependencies, with the job's variables expanded in them, as the agent
// needs them.
func TestCreateJobSpecFiles(t *testing.T) {
	f := newFixture(t, scheduler.Config{})
	p := f.create(`
variables:
  REGISTRY: registry.example.com
  POLICY: pull
stages: [build, test]
build:
  stage: build
  image:
    name: $REGISTRY/go:1.26
    entrypoint: [""]
    pull_policy: [if-not-present]
  services:
    - name: $REGISTRY/postgres:17
      alias: db-$CI_JOB_NAME
      command: ["postgres", "-c", "fsync=off"]
      variables: {PGDATA: /tmp/$CI_JOB_NAME}
  cache:
    - key: deps-$CI_COMMIT_REF_SLUG
      paths: [vendor/]
      policy: $POLICY
      fallback_keys: [deps-$CI_DEFAULT_BRANCH]
    - key: {files: [go.sum], prefix: $CI_JOB_NAME}
      paths: [.cache/]
  artifacts:
    name: bin-$CI_COMMIT_REF_SLUG
    paths: [bin/$CI_JOB_NAME/]
    exclude: ["*.tmp"]
    expire_in: 2 hours
    when: always
  script: [make]
test:
  stage: test
  script: [make test]
none:
  stage: test
  script: [true]
  dependencies: []
`)
	specs := map[string]store.JobSpec{}
	for _, j := range f.jobs(p.ID) {
		specs[j.Name] = j.Spec
	}
	build := specs["build"]
	wantImage := &store.ImageSpec{Name: "registry.example.com/go:1.26", Entrypoint: []string{""}, PullPolicy: []string{"if-not-present"}}
	if !reflect.DeepEqual(build.Image, wantImage) {
		t.Errorf("image %+v, want %+v", build.Image, wantImage)
	}
	wantServices := []store.ServiceSpec{{
		ImageSpec: store.ImageSpec{Name: "registry.example.com/postgres:17"}, Alias: "db-build",
		Command: []string{"postgres", "-c", "fsync=off"}, Variables: []store.Variable{{Name: "PGDATA", Value: "/tmp/build"}},
	}}
	if !reflect.DeepEqual(build.Services, wantServices) {
		t.Errorf("services %+v, want %+v", build.Services, wantServices)
	}
	wantCaches := []store.CacheSpec{
		{Key: "deps-main", Paths: []string{"vendor/"}, Policy: "pull", When: "on_success", FallbackKeys: []string{"deps-main"}},
		{KeyFiles: []string{"go.sum"}, KeyPrefix: "build", Paths: []string{".cache/"}, Policy: "pull-push", When: "on_success"},
	}
	if !reflect.DeepEqual(build.Caches, wantCaches) {
		t.Errorf("caches\n %+v\nwant\n %+v", build.Caches, wantCaches)
	}
	wantArtifacts := &store.ArtifactsSpec{Name: "bin-main", Paths: []string{"bin/build/"}, Exclude: []string{"*.tmp"},
		When: "always", ExpireIn: 2 * time.Hour}
	if !reflect.DeepEqual(build.Artifacts, wantArtifacts) {
		t.Errorf("artifacts %+v, want %+v", build.Artifacts, wantArtifacts)
	}
	if got := specs["test"].Dependencies; !reflect.DeepEqual(got, []string{"build"}) {
		t.Errorf("test's dependencies %q, want [build]", got)
	}
	if got := specs["none"].Dependencies; len(got) != 0 {
		t.Errorf("none's dependencies %q, want none", got)
	}
	if specs["test"].Image != nil || specs["test"].Artifacts != nil || specs["test"].Caches != nil {
		t.Errorf("test has files it did not ask for: %+v", specs["test"])
	}
}

// jobs returns the pipeline's jobs.
func (f *fixture) jobs(pipelineID int64) []*store.Job {
	f.t.Helper()
	var js []*store.Job
	err := f.store.Read(f.ctx, func(tx store.Tx) error {
		var err error
		js, err = tx.Jobs().ListByPipeline(f.ctx, pipelineID)
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return js
}
