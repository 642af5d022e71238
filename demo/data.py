"""The word lists and weights the demo data set is drawn from."""

from properties.models import Currency, PropertyType

DEMO_PASSWORD = "staybase-demo"  # noqa: S105 - published on purpose: it logs into the demo accounts.
DEMO_EMAIL_DOMAIN = "demo.staybase.local"

# (city, country, currency, latitude, longitude, price factor)
CITIES: list[tuple[str, str, str, float, float, float]] = [
    ("Lisbon", "Portugal", Currency.EUR, 38.7223, -9.1393, 0.9),
    ("Porto", "Portugal", Currency.EUR, 41.1579, -8.6291, 0.8),
    ("Madrid", "Spain", Currency.EUR, 40.4168, -3.7038, 0.95),
    ("Barcelona", "Spain", Currency.EUR, 41.3874, 2.1686, 1.1),
    ("Seville", "Spain", Currency.EUR, 37.3891, -5.9845, 0.8),
    ("Paris", "France", Currency.EUR, 48.8566, 2.3522, 1.4),
    ("Nice", "France", Currency.EUR, 43.7102, 7.2620, 1.2),
    ("Berlin", "Germany", Currency.EUR, 52.5200, 13.4050, 1.0),
    ("Munich", "Germany", Currency.EUR, 48.1351, 11.5820, 1.15),
    ("Amsterdam", "Netherlands", Currency.EUR, 52.3676, 4.9041, 1.35),
    ("Rome", "Italy", Currency.EUR, 41.9028, 12.4964, 1.1),
    ("Florence", "Italy", Currency.EUR, 43.7696, 11.2558, 1.15),
    ("Milan", "Italy", Currency.EUR, 45.4642, 9.1900, 1.2),
    ("Vienna", "Austria", Currency.EUR, 48.2082, 16.3738, 1.05),
    ("Dublin", "Ireland", Currency.EUR, 53.3498, -6.2603, 1.3),
    ("Athens", "Greece", Currency.EUR, 37.9838, 23.7275, 0.75),
    ("Brussels", "Belgium", Currency.EUR, 50.8503, 4.3517, 0.95),
    ("Helsinki", "Finland", Currency.EUR, 60.1699, 24.9384, 1.0),
    ("London", "United Kingdom", Currency.GBP, 51.5072, -0.1276, 1.3),
    ("Edinburgh", "United Kingdom", Currency.GBP, 55.9533, -3.1883, 1.0),
    ("Manchester", "United Kingdom", Currency.GBP, 53.4808, -2.2426, 0.8),
    ("New York", "United States", Currency.USD, 40.7128, -74.0060, 1.6),
    ("San Francisco", "United States", Currency.USD, 37.7749, -122.4194, 1.6),
    ("Los Angeles", "United States", Currency.USD, 34.0522, -118.2437, 1.4),
    ("Chicago", "United States", Currency.USD, 41.8781, -87.6298, 1.1),
    ("Miami", "United States", Currency.USD, 25.7617, -80.1918, 1.3),
    ("Austin", "United States", Currency.USD, 30.2672, -97.7431, 1.1),
    ("Seattle", "United States", Currency.USD, 47.6062, -122.3321, 1.2),
    ("Boston", "United States", Currency.USD, 42.3601, -71.0589, 1.3),
    ("New Orleans", "United States", Currency.USD, 29.9511, -90.0715, 1.0),
]

# property type: (weight, base nightly price, guests range, bedrooms range)
PROPERTY_TYPES: dict[str, tuple[int, int, tuple[int, int], tuple[int, int]]] = {
    PropertyType.APARTMENT: (45, 95, (2, 5), (1, 2)),
    PropertyType.ROOM: (15, 50, (1, 2), (1, 1)),
    PropertyType.LOFT: (10, 130, (2, 4), (1, 2)),
    PropertyType.HOUSE: (18, 170, (4, 8), (2, 4)),
    PropertyType.CABIN: (6, 120, (2, 6), (1, 3)),
    PropertyType.VILLA: (6, 380, (6, 12), (3, 6)),
}

AMENITIES: list[tuple[str, str]] = [
    ("wifi", "Wi-Fi"),
    ("kitchen", "Kitchen"),
    ("washer", "Washer"),
    ("dryer", "Dryer"),
    ("air-conditioning", "Air conditioning"),
    ("heating", "Heating"),
    ("workspace", "Dedicated workspace"),
    ("tv", "TV"),
    ("hair-dryer", "Hair dryer"),
    ("iron", "Iron"),
    ("pool", "Pool"),
    ("hot-tub", "Hot tub"),
    ("free-parking", "Free parking"),
    ("ev-charger", "EV charger"),
    ("crib", "Crib"),
    ("gym", "Gym"),
    ("bbq-grill", "BBQ grill"),
    ("breakfast", "Breakfast"),
    ("fireplace", "Indoor fireplace"),
    ("balcony", "Balcony"),
    ("garden", "Garden"),
    ("sea-view", "Sea view"),
    ("elevator", "Elevator"),
    ("pets-allowed", "Pets allowed"),
    ("self-check-in", "Self check-in"),
    ("smoke-alarm", "Smoke alarm"),
]
COMMON_AMENITIES = ("wifi", "kitchen", "heating", "smoke-alarm", "self-check-in")

FIRST_NAMES = [
    "Ana", "Ben", "Chloé", "David", "Elena", "Farah", "Giulia", "Hugo", "Ines", "James", "Katja", "Liam",
    "Maria", "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Sam", "Tomás", "Uma", "Victor", "Wen", "Yusuf", "Zoe",
]  # fmt: skip
LAST_NAMES = [
    "Almeida", "Brown", "Costa", "Dubois", "Eriksen", "Fischer", "García", "Hughes", "Ivanova", "Jensen",
    "Kowalski", "Lopez", "Müller", "Nowak", "O'Brien", "Papadopoulos", "Rossi", "Silva", "Schmidt", "Tanaka",
    "Umar", "Virtanen", "Walsh", "Young", "Zimmermann",
]  # fmt: skip
ADJECTIVES = [
    "Sunny", "Cosy", "Bright", "Quiet", "Charming", "Modern", "Spacious", "Stylish", "Historic", "Airy",
    "Elegant", "Rustic", "Minimalist", "Family-friendly", "Central", "Hidden",
]  # fmt: skip
SETTINGS = [
    "near the old town", "with river views", "by the park", "close to the beach", "in the city centre",
    "steps from the metro", "with a rooftop terrace", "in a leafy street", "near the market", "by the harbour",
]  # fmt: skip
STREETS = [
    "Main Street",
    "Market Square",
    "Park Lane",
    "Harbour Road",
    "Station Avenue",
    "Church Street",
    "High Street",
]
REVIEW_TEXTS = {
    5: ["Perfect stay, would book again.", "Spotless and exactly as described.", "Wonderful host, great location."],
    4: ["Very nice place, a little noisy at night.", "Great location, small kitchen.", "Comfortable and clean."],
    3: ["Fine for a short stay.", "Good location but dated furniture.", "OK, check-in took a while."],
    2: ["Not as clean as expected.", "Photos flatter the place."],
    1: ["Would not stay again.", "Very different from the listing."],
}
RATING_WEIGHTS = {5: 55, 4: 28, 3: 10, 2: 4, 1: 3}
REVIEW_SHARE = 0.4
STAY_LENGTHS = (1, 2, 2, 3, 3, 3, 4, 4, 5, 6, 7, 7, 10, 14)
