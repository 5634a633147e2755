package node

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RunPauseVersions plays the one regular workload a container runtime
// would finish here: pods whose every container is the pause image asked
// for its version (`/pause -v`, which prints it and exits 0), with a
// restart policy that lets the pod end. kubeadm upgrade's CreateJob health
// check is such a pod: without it the Job never completes. The pod ends
// Succeeded, its containers terminated with exit code 0, as the kubelet
// reports it. Every other regular pod is left alone: the emulation runs
// no images.
func (a *Agent) RunPauseVersions(ctx context.Context) error {
	pods, err := a.nodePods(ctx)
	if err != nil {
		return err
	}
	for _, p := range pods {
		if !pauseVersionPod(p) {
			continue
		}
		patch, err := json.Marshal(map[string]any{"status": pauseSucceeded(p)})
		if err != nil {
			return err
		}
		_, err = a.Client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, "application/strategic-merge-patch+json", patch, metav1.PatchOptions{}, "status")
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("pod %s/%s ran /pause -v: %w", p.Namespace, p.Name, err)
		}
	}
	return nil
}

// pauseVersionPod says whether p is a pod that only asks pause for its
// version and has not ended yet.
func pauseVersionPod(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return false
	}
	if p.Spec.RestartPolicy == corev1.RestartPolicyAlways || len(p.Spec.InitContainers) > 0 {
		return false
	}
	for _, c := range p.Spec.Containers {
		name, _, _ := strings.Cut(c.Image[strings.LastIndex(c.Image, "/")+1:], ":")
		if name != "pause" || len(c.Command) > 0 || !slices.Equal(c.Args, []string{"-v"}) {
			return false
		}
	}
	return true
}

// pauseSucceeded is the status of p once every container exited 0.
func pauseSucceeded(p *corev1.Pod) corev1.PodStatus {
	now := metav1.Now()
	st := corev1.PodStatus{Phase: corev1.PodSucceeded, StartTime: &now}
	for _, t := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		status := corev1.ConditionTrue
		reason := ""
		if t == corev1.ContainersReady || t == corev1.PodReady {
			status, reason = corev1.ConditionFalse, "PodCompleted"
		}
		st.Conditions = append(st.Conditions, corev1.PodCondition{Type: t, Status: status, Reason: reason, LastTransitionTime: now})
	}
	for _, c := range p.Spec.Containers {
		st.ContainerStatuses = append(st.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 0, Reason: "Completed", StartedAt: now, FinishedAt: now}},
		})
	}
	return st
}
