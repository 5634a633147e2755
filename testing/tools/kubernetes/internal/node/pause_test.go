package node

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPauseVersionPod(t *testing.T) {
	pod := func(policy corev1.RestartPolicy, phase corev1.PodPhase, cs ...corev1.Container) *corev1.Pod {
		return &corev1.Pod{Spec: corev1.PodSpec{RestartPolicy: policy, Containers: cs}, Status: corev1.PodStatus{Phase: phase}}
	}
	version := corev1.Container{Name: "c", Image: "registry.k8s.io/pause:3.10.1", Args: []string{"-v"}}
	forever := corev1.Container{Name: "c", Image: "registry.k8s.io/pause:3.10.1"}
	other := corev1.Container{Name: "c", Image: "quay.io/cilium/cilium:v1.18.4", Args: []string{"-v"}}
	deleting := pod(corev1.RestartPolicyNever, corev1.PodPending, version)
	deleting.DeletionTimestamp = &metav1.Time{}
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want bool
	}{
		{"kubeadm's health-check Job", pod(corev1.RestartPolicyNever, corev1.PodPending, version), true},
		{"on failure also ends", pod(corev1.RestartPolicyOnFailure, corev1.PodPending, version), true},
		{"restarted forever", pod(corev1.RestartPolicyAlways, corev1.PodPending, version), false},
		{"pause without -v runs forever", pod(corev1.RestartPolicyNever, corev1.PodPending, forever), false},
		{"another image", pod(corev1.RestartPolicyNever, corev1.PodPending, other), false},
		{"one container of another image", pod(corev1.RestartPolicyNever, corev1.PodPending, version, other), false},
		{"already ended", pod(corev1.RestartPolicyNever, corev1.PodSucceeded, version), false},
		{"being deleted", deleting, false},
	} {
		if got := pauseVersionPod(tc.pod); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	st := pauseSucceeded(pod(corev1.RestartPolicyNever, corev1.PodPending, version))
	if st.Phase != corev1.PodSucceeded || len(st.ContainerStatuses) != 1 || st.ContainerStatuses[0].State.Terminated == nil || st.ContainerStatuses[0].State.Terminated.ExitCode != 0 {
		t.Errorf("status after /pause -v: %+v", st)
	}
}
