package playbooks

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPodProblem(t *testing.T) {
	pod := func(ready bool, waiting string, restarts int32) *corev1.Pod {
		st := corev1.ContainerStatus{Name: "kube-scheduler", Ready: ready, RestartCount: restarts}
		if waiting != "" {
			st.State.Waiting = &corev1.ContainerStateWaiting{Reason: waiting}
		}
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"component": "kube-scheduler"}},
			Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{st}}}
	}
	for _, tc := range []struct {
		pod  *corev1.Pod
		want string
	}{
		{pod(true, "", 0), ""},
		{pod(true, "", 3), ""}, // restarted, running again: fine now
		{pod(false, "CrashLoopBackOff", 5), "kube-scheduler: CrashLoopBackOff, 5 restarts"},
		{pod(false, "", 1), "kube-scheduler: not ready, 1 restarts"},
	} {
		if got := podProblem(tc.pod); got != tc.want {
			t.Errorf("podProblem = %q, want %q", got, tc.want)
		}
	}
}
