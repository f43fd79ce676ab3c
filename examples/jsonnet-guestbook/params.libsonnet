// Parameters of the guestbook, Argo CD's jsonnet-guestbook shape.
{
  name: 'jsonnet-guestbook-ui',
  image: 'gcr.io/heptio-images/ks-guestbook-demo:0.2',
  replicas: 1,
  containerPort: 80,
  servicePort: 80,
  type: 'LoadBalancer',
}
