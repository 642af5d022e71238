from django.urls import path

from bookings import views

urlpatterns = [
    path("bookings/", views.BookingListCreateView.as_view(), name="booking-list"),
    path("bookings/<int:pk>/", views.BookingDetailView.as_view(), name="booking-detail"),
    path("bookings/<int:pk>/cancel/", views.BookingCancelView.as_view(), name="booking-cancel"),
    path("bookings/<int:pk>/confirm/", views.BookingConfirmView.as_view(), name="booking-confirm"),
    path("host/bookings/", views.HostBookingListView.as_view(), name="host-booking-list"),
    path("financial/summary/", views.FinancialSummaryView.as_view(), name="financial-summary"),
    path("payouts/", views.PayoutListCreateView.as_view(), name="payout-list"),
]
