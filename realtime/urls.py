from django.urls import path

from realtime import views

urlpatterns = [
    path("status/", views.SocketStatusView.as_view(), name="ws-status"),
    path("broadcast/", views.BroadcastView.as_view(), name="ws-broadcast"),
    path("send-to-property/<int:pk>/", views.SendToPropertyView.as_view(), name="ws-send-to-property"),
]
